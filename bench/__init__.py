"""Benchmarks: numbers printed with the machine they were measured on (see RESULTS.md)."""
