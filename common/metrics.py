"""The pipeline's Beam metrics: one namespace, names listed once.

The conservation identity every run must satisfy, in these names:
``events_read == events_written + filtered_out + duplicates + dead_letters + withheld``,
where ``dead_letters`` counts the committed ones: the counter counts every dead letter
made, so the summary subtracts ``withheld_dead_letters`` (a failed org's, part of ``withheld``).

Every increment goes to Beam (the Dataflow UI, the run summary) when the process
runs Beam (a counter made where Beam is not loaded, as in the decode processes or
the local streaming loops, has no Beam side; this module never imports Beam)
and, on a local run with ``--metrics_port``, also to the process's Prometheus
endpoint (:mod:`pipeline.monitoring` installs itself with :func:`mirror_to`; on
Dataflow nothing is installed and the counters stay Beam metrics only).
:func:`measure` carries the few readings that are not counts (a commit's
duration, the newest committed ``published``) to that endpoint only.
"""

from __future__ import annotations

import math
import sys
import threading

from common import drift as drift_reports

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
    "withheld": "events and dead letters not committed, read again by the next run (an org whose source failed; "
                "a stream's open window when it stopped)",
    "withheld_dead_letters": "  of which dead letters",
    "rows_written": "rows committed (one per target[] entry)",
    "coerced": "events kept with a number or boolean in a text field stored as its JSON text (informational)",
    "files_written": "Parquet files committed",
}

#: Counters of the Okta API source, printed when a run used it.
API_COUNTERS = {
    "okta_pages": "pages read from /api/v1/logs",
    "okta_requests": "HTTP requests sent to /api/v1/logs (pages, retried attempts and 429s), counted as each is sent",
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


#: Counters of the streaming paths (not in the batch summary).
STREAM_COUNTERS = {
    "windows_committed": "windows committed to the lake (a window with nothing in it commits nothing)",
    "pubsub_messages_acked": "Pub/Sub messages acknowledged after their window's commit",
}

#: Readings sent only to the local Prometheus endpoint: name -> meaning.
MEASUREMENTS = {
    "commit_seconds": "seconds one window's commit took (lake, dead letters, BigQuery)",
    "newest_published": "published time (epoch seconds) of the newest event of a committed window",
    "window_closed": "a window ended and was committed or held nothing (epoch seconds)",
    "source_reached": "the source answered (an Okta page or a Pub/Sub pull; epoch seconds)",
    "cursor_loaded": "when the stored cursor a run starts from was stored (epoch seconds)",
}

#: Freshness, one observation per committed event, per org: name -> meaning (histograms on the local endpoint,
#: quantiles in the window line and the run summary).
FRESHNESS = {
    "receipt_to_commit_seconds": "seconds from the moment the stream received an event (an Okta page, a Pub/Sub "
                                 "pull) to the commit that made it queryable (lake, then Iceberg)",
    "published_to_commit_seconds": "seconds from an event's published time to the commit that made it queryable",
}

_mirror = None  # set by pipeline.monitoring on a local run with --metrics_port


def mirror_to(mirror) -> None:
    """Send every increment and measurement of this process to ``mirror`` too (None: stop)."""
    global _mirror
    _mirror = mirror


_totals: dict[str, int] = {}  # this process's increments, every counter (the local loops' summary reads them)
_totals_lock = threading.Lock()


def process_totals() -> dict[str, int]:
    """Every counter's increments in this process so far (a local streaming loop's totals)."""
    with _totals_lock:
        return dict(_totals)


class _Counter:
    """A Beam counter whose increments also reach the local mirror, when one is installed."""

    def __init__(self, name: str):
        self.name = name
        self._beam = _beam_counter(NAMESPACE, name)

    def inc(self, n: int = 1, mirror: bool = True) -> None:
        """Count ``n``; ``mirror=False`` counts for Beam only: a DoFn catching up, in its own thread, on what
        threads of its own counted for the local endpoint (Beam counts only in a DoFn's thread)."""
        if self._beam is not None:
            self._beam.inc(n)
        if mirror:
            with _totals_lock:
                _totals[self.name] = _totals.get(self.name, 0) + n
            if _mirror is not None:
                _mirror.inc(self.name, n)


def _beam_counter(namespace: str, name: str):
    """Beam's counter of that name when this process runs Beam, else None (Beam is never imported here)."""
    beam_metrics = sys.modules.get("apache_beam.metrics.metric")
    return None if beam_metrics is None else beam_metrics.Metrics.counter(namespace, name)


def counter(name: str) -> _Counter:
    return _Counter(name)


def dead_letter_counter(stage: str) -> _Counter:
    return _Counter(f"dead_letters_{stage}")


def mirroring() -> bool:
    """Whether a local endpoint takes readings (so a reading that costs work is worth taking)."""
    return _mirror is not None


def measure(name: str, value: float) -> None:
    """A reading for the local endpoint (no Beam metric): see :data:`MEASUREMENTS`."""
    if _mirror is not None:
        _mirror.measure(name, value)


class Quantiles:
    """Quantiles of many readings in bounded memory: counts in buckets 2% wide (so each quantile is within 2%)."""

    RATIO = 1.02
    SMALLEST = 0.001  # readings below this (or negative: clocks apart) count as this

    def __init__(self):
        self._counts: dict[int, int] = {}
        self.count = 0
        self.largest = 0.0

    def add(self, values) -> None:
        for value in values:
            bucket = 0 if value <= self.SMALLEST else math.ceil(math.log(value / self.SMALLEST, self.RATIO))
            self._counts[bucket] = self._counts.get(bucket, 0) + 1
            self.count += 1
            self.largest = max(self.largest, value)

    def quantile(self, q: float) -> float:
        """The reading at quantile ``q`` (the upper edge of its bucket; the largest reading at most); NaN if none."""
        if not self.count:
            return float("nan")
        rank, seen = max(1, math.ceil(q * self.count)), 0
        for bucket in sorted(self._counts):
            seen += self._counts[bucket]
            if seen >= rank:
                return min(self.SMALLEST * self.RATIO ** bucket, self.largest)
        return self.largest

    def describe(self) -> str:
        """``p50 1.2 s, p95 3.4 s, p99 5.0 s, max 6.1 s (n events)``."""
        if not self.count:
            return "no events"
        parts = [f"p{round(q * 100)} {self.quantile(q):.1f} s" for q in (0.5, 0.95, 0.99)]
        return f"{', '.join(parts)}, max {self.largest:.1f} s ({self.count:,} events)"


_freshness: dict[str, Quantiles] = {name: Quantiles() for name in FRESHNESS}


def observe(name: str, org: str | None, values) -> None:
    """Readings of one of :data:`FRESHNESS` for ``org``: kept for the run summary, and sent to the local endpoint."""
    values = list(values)
    with _totals_lock:
        _freshness[name].add(values)
    if _mirror is not None:
        _mirror.observe(name, org or "", values)


def freshness_totals() -> dict[str, Quantiles]:
    """This process's freshness readings so far (the run summary prints them)."""
    with _totals_lock:
        return {name: _copy(quantiles) for name, quantiles in _freshness.items()}


def _copy(quantiles: Quantiles) -> Quantiles:
    copy = Quantiles()
    copy._counts, copy.count, copy.largest = dict(quantiles._counts), quantiles.count, quantiles.largest
    return copy


#: Per-org counters (runs that know the org): namespace of their own, so the totals above stay as they are.
ORG_NAMESPACE = "okta_personal_org"
#: The counters broken down per org; the identity holds for each org.
ORG_COUNTERS = ("events_read", "events_written", "filtered_out", "duplicates", "dead_letters", "withheld",
                "withheld_dead_letters", "rows_written")
ORG_SEPARATOR = "|"


def org_counter(org: str, name: str):
    """``name`` counted for one org (``<org>|<name>`` in :data:`ORG_NAMESPACE`), or None without Beam."""
    return _beam_counter(ORG_NAMESPACE, f"{org}{ORG_SEPARATOR}{name}")


class OrgCounters:
    """Per-org counters of one DoFn, made on first use (``inc(org, name, n)``; a None org counts nowhere)."""

    def __init__(self):
        self._counters: dict = {}

    def inc(self, org: str | None, name: str, value: int = 1) -> None:
        if org is None or not value:
            return
        key = (org, name)
        if key not in self._counters:
            self._counters[key] = org_counter(org, name)
        found = self._counters[key]
        if found is not None:
            found.inc(value)


#: Schema drift (:mod:`common.drift`), counted apart so the totals above stay as they are: Beam counters named
#: ``<kind>|<event type>[|<path>[|<JSON type>]]`` in this namespace; on the local endpoint one labelled family
#: per kind (:data:`DRIFT_COUNTERS`).
DRIFT_NAMESPACE = "okta_personal_drift"
DRIFT_COUNTERS = {
    "events": ("kept events watched for schema drift, per event_type", ("event_type",)),
    "undocumented": ("kept events holding an undocumented JSON path", ("event_type", "path")),
    "type_changes": ("kept events whose documented field held another JSON type (got)", ("event_type", "path", "got")),
    "new_event_types": ("event types kept for the first time in the lake", ("event_type",)),
    "new_paths": ("undocumented paths seen for the first time in the lake", ("event_type", "path")),
}

_drift_totals: dict = {}  # this process's drift report so far, news included (a local loop's summary reads it)


def count_drift(report: dict, news_only: bool = False) -> None:
    """Count a drift report (:mod:`common.drift`): Beam counters when Beam runs (call it in a DoFn's thread), this
    process's drift totals and the local endpoint. Its ``new`` marks count as new event types and paths;
    ``news_only``: only those (a batch run counts what it saw as it reads, what is new once it committed)."""
    if not report:
        return
    news = drift_reports.only_news(report)
    with _totals_lock:
        drift_reports.merge(_drift_totals, news if news_only else report)
    for event_type, entry in report.items():
        if not news_only:
            _count_drift("events", (event_type,), entry["events"])
        if entry.get("new"):
            _count_drift("new_event_types", (event_type,), 1)
        for path, seen in entry["paths"].items():
            if not news_only:
                _count_drift("undocumented", (event_type, path), seen["events"])
            if seen.get("new"):
                _count_drift("new_paths", (event_type, path), 1)
        if news_only:
            continue
        for path, by_type in entry["changed"].items():
            for got, events in by_type.items():
                _count_drift("type_changes", (event_type, path, got), events)


def _count_drift(kind: str, labels: tuple, n: int) -> None:
    if not n:
        return
    beam = _beam_counter(DRIFT_NAMESPACE, ORG_SEPARATOR.join((kind, *labels)))
    if beam is not None:
        beam.inc(n)
    if _mirror is not None:
        _mirror.drift(kind, labels, n)


def take_drift_totals() -> dict:
    """This process's drift since the last call (every report counted with :func:`count_drift`), as one report:
    a local loop's summary (the loop takes it once before it starts)."""
    global _drift_totals
    with _totals_lock:
        taken, _drift_totals = _drift_totals, {}
    return taken
