"""The pipeline's Beam metrics: one namespace, names listed once.

The conservation identity every run must satisfy, in these names:
``events_read == events_written + filtered_out + duplicates + dead_letters``.
"""

from __future__ import annotations

from apache_beam.metrics import Metrics

NAMESPACE = "okta_personal"

#: name -> meaning, in the order the run summary prints them.
COUNTERS = {
    "events_read": "event records read (a bad input line counts as one)",
    "events_written": "events whose rows were committed to the lake (kept)",
    "filtered_out": "valid events of types the selection does not keep",
    "duplicates": "events dropped because their uuid was already written",
    "duplicates_in_run": "  of which seen earlier in this run",
    "duplicates_in_lake": "  of which already in the lake before this run",
    "dead_letters": "inputs sent to the dead-letter output",
    "rows_written": "rows committed (one per target[] entry)",
    "files_written": "Parquet files committed",
}


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def dead_letter_counter(stage: str):
    return Metrics.counter(NAMESPACE, f"dead_letters_{stage}")
