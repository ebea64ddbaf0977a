"""What every component shares: the error base, durations, the metric names, the structure of JSON text."""
