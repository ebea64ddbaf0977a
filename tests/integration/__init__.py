"""Integration tests: real stand-in servers and subprocesses."""
