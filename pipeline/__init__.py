"""Options, wiring and the entry point of the Okta Personal lake pipeline."""
