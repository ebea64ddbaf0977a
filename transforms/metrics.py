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

#: Counters of the Okta API source, printed when a run used it.
API_COUNTERS = {
    "okta_pages": "pages read from /api/v1/logs",
    "okta_retries": "requests retried (network errors, cut-off bodies, 5xx)",
    "okta_throttled": "429 answers waited out",
    "okta_slice_splits": "time slices split after Okta's query timeout (E0000009)",
    "cursor_stored": "polling cursor stored after the lake commit",
}

#: Counters of the BigQuery output, printed when a run wrote BigQuery.
BIGQUERY_COUNTERS = {
    "bigquery_rows_loaded": "rows of the touched lake partitions loaded into the staging table",
    "bigquery_rows_inserted": "rows the MERGE added to the table (the rest were there already)",
    "bigquery_rows_streamed": "rows sent with streaming inserts",
}

ICEBERG_COUNTERS = {
    "iceberg_rows_added": "rows the Iceberg snapshot added",
    "iceberg_rows_present": "rows the Iceberg table held already (insert-if-absent)",
}


#: Per-org counters (runs that know the org): namespace of their own, so the totals above stay as they are.
ORG_NAMESPACE = "okta_personal_org"
#: The counters broken down per org; the identity holds for each org.
ORG_COUNTERS = ("events_read", "events_written", "filtered_out", "duplicates", "dead_letters", "rows_written")
ORG_SEPARATOR = "|"


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def org_counter(org: str, name: str):
    """``name`` counted for one org (``<org>|<name>`` in :data:`ORG_NAMESPACE`)."""
    return Metrics.counter(ORG_NAMESPACE, f"{org}{ORG_SEPARATOR}{name}")


class OrgCounters:
    """Per-org counters of one DoFn, made on first use (``inc(org, name, n)``; a None org counts nowhere)."""

    def __init__(self):
        self._counters: dict = {}

    def inc(self, org: str | None, name: str, value: int = 1) -> None:
        if org is None or not value:
            return
        key = (org, name)
        found = self._counters.get(key)
        if found is None:
            found = self._counters[key] = org_counter(org, name)
        found.inc(value)


def dead_letter_counter(stage: str):
    return Metrics.counter(NAMESPACE, f"dead_letters_{stage}")
