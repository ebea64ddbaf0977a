"""Unit tests: no servers, no subprocesses (`make test-fast`)."""
