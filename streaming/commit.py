"""After a window is committed to the lake: its counters, its BigQuery rows, its Iceberg snapshot, its one line.

Every streaming path ends here, whichever runner: the window buffer of the
local loops and the Okta tail (:mod:`streaming.window_buffer`) and the
commit DoFns of Beam's Pub/Sub graph (:mod:`streaming.beam`).
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Sequence

from common import drift as drift_reports
from common.metrics import counter
from sinks.iceberg.compaction import table_compactor
from sinks.iceberg.windows import committer
from sinks.lake.compactor import compactor as lake_compactor
from sinks.lake.window import WindowCommit, commit_window
from streaming.settings import WindowSettings


def finish_window(settings: WindowSettings, window: str, schema, result) -> None:
    """After a window's rows are committed: count them, then stream them to BigQuery if asked.

    Every streaming path ends here (:class:`streaming.window_buffer.WindowBuffer`, or the Pub/Sub commit DoFn).
    """
    counter("rows_written").inc(result.rows)
    counter("events_written").inc(result.events)
    counter("files_written").inc(result.files)
    counter("duplicates").inc(result.duplicates_in_lake + result.duplicates_in_window)
    counter("duplicates_in_lake").inc(result.duplicates_in_lake)
    counter("duplicates_in_run").inc(result.duplicates_in_window)
    if settings.bigquery is None or not result.written:
        return
    from sinks.bigquery.client import stream_files

    sent, refused = stream_files(settings.bigquery, settings.lake.root, result.written)
    counter("bigquery_rows_streamed").inc(sent)
    if refused:  # rows BigQuery refuses become the window's dead letters
        commit_window(settings.lake.root, settings.lake.dead_letter, window, settings.job, schema, (), refused,
                      settings.lake.compression)
        counter("dead_letters").inc(len(refused))
        result.dead_letters += len(refused)


def commit_snapshot(settings: WindowSettings, window: str, results: Sequence[WindowCommit], source: str,
                    cursor: str | None = None):
    """With ``--iceberg_table``: the window's committed lake files as one Iceberg snapshot; then a compaction
    pass when one is due (:func:`compact_after_window`).

    Called once per window after all of its lake commits, and before the caller stores the Okta
    cursor or acknowledges Pub/Sub messages. The summary holds the job, the window, the source, the
    lake's counts and, for the Okta tail, the cursor after the window. A partition the lake said
    already held some of the window's rows (a replay after a crash between the lake and Iceberg
    commits) is re-read whole, so the table catches up with the lake; insert-if-absent keeps it
    free of duplicates. Returns :class:`sinks.iceberg.commit.CommitResult` or None.
    """
    result = _snapshot(settings, window, results, source, cursor)
    compact_after_window(settings, results)
    return result


def _snapshot(settings: WindowSettings, window: str, results: Sequence[WindowCommit], source: str,
              cursor: str | None):
    if settings.iceberg is None:
        return None
    files = [item for result in results for item in result.written]
    files += [(partition, None) for partition in sorted({p for r in results for p in r.replayed})]
    if not files:
        return None
    summary = {"run-id": settings.job, "window": window, "source": source,
               "lake-rows-written": sum(r.rows for r in results),
               "lake-events-written": sum(r.events for r in results)}
    if cursor:
        summary["cursor"] = cursor
    tables = committer(settings.iceberg, settings.iceberg_keep_snapshots)
    result = tables.commit_files(settings.lake.root, files, summary, settings.decode.raw_event)
    counter("iceberg_rows_added").inc(result.rows_added)
    counter("iceberg_rows_present").inc(result.rows_present)
    if result.data_files:
        counter("iceberg_snapshots").inc()
    return result


def compact_after_window(settings: WindowSettings, results: Sequence[WindowCommit]) -> None:
    """After a window's commits: this process's compaction pass over the lake (in its own thread) and the Iceberg
    table (under the table's committer), when one is due (:mod:`sinks.lake.compactor`,
    :mod:`sinks.iceberg.compaction`). A failed pass is a warning line:
    the window is committed, and the next pass takes the work up again (an interrupted compaction is finished
    by whoever compacts the partition next)."""
    partitions = {p for r in results for p in r.partitions}

    def lake_done(report) -> None:
        if isinstance(report, Exception):
            _warn("lake", report)
        elif report.changed:
            counter("lake_files_compacted").inc(report.files_read)
            counter("lake_compacted_files_written").inc(report.files_written)
            if not settings.quiet:
                print(report.render(), file=sys.stderr, flush=True)

    try:
        lake = lake_compactor(settings.lake.root, settings.job, compression=settings.lake.compression,
                              background=True)
        lake.after_window(partitions, done=lake_done)
    except Exception as exc:  # noqa: BLE001 - compaction never fails a committed window
        _warn("lake", exc)
    if settings.iceberg is None:
        return
    try:
        tables = table_compactor(committer(settings.iceberg, settings.iceberg_keep_snapshots), settings.job)
        report = tables.after_window(partitions)
        if report is not None and report.snapshot_id is not None:
            counter("iceberg_files_compacted").inc(report.files_rewritten)
            if not settings.quiet:
                print(report.render(settings.iceberg.table), file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001
        _warn(f"Iceberg ({settings.iceberg.table})", exc)


def _warn(what: str, exc: Exception) -> None:
    counter("compaction_failures").inc()
    print(f"warning: {what} compaction failed, left for the next pass: {exc.__class__.__name__}: "
          f"{' '.join(str(exc).split())[:300]}", file=sys.stderr, flush=True)


def report_window(settings: WindowSettings, start: float, results: Sequence[WindowCommit], latency: str,
                  read: int | None = None, duplicates: int = 0, drift: dict | None = None) -> None:
    """Count one commit of a window and print its progress line (unless quiet); ``latency`` ends the line: how
    fresh the committed events are (the window buffer's "committed 0.4 s (max 0.6 s) after receipt, 3.1 s (max
    6.5 s) after published", medians and maxima), or how long after the window's end Beam committed it.

    ``duplicates``: the window's events dropped before its commit (a repeat within its reads or the dedupe
    horizon); the commit adds those already in the lake. ``drift``: the window's drift report; what it holds new
    to the lake (:mod:`sinks.lake.drift`) closes the line."""
    counter("windows_committed").inc()
    if settings.quiet:
        return
    begin = _dt.datetime.fromtimestamp(start, _dt.timezone.utc)
    end = begin + _dt.timedelta(seconds=settings.length)
    rows = sum(r.rows for r in results)
    events = sum(r.events for r in results)
    partitions = {p for r in results for p in r.partitions}
    dead = sum(r.dead_letters for r in results)
    duplicates += sum(r.duplicates_in_lake + r.duplicates_in_window for r in results)
    read_text = "" if read is None else f"read {read:,}, "
    news = drift_news(drift or {})
    print(f"window {begin:%Y-%m-%d %H:%M:%S}-{end:%H:%M:%S}: {read_text}wrote {rows:,} rows ({events:,} events) in "
          f"{len(partitions)} partition(s), {dead} dead letters, {duplicates} duplicates; {latency}"
          + (f"; drift: {news}" if news else ""), file=sys.stderr, flush=True)


def drift_news(report: dict) -> str:
    """What a window's drift report holds new to the lake, for its line ("" when nothing)."""
    types, paths = drift_reports.news(report)
    parts = [f"new event type {t}" for t in types]
    parts += [f"new paths of {t}: {', '.join(found[:5])}" + (f" (+{len(found) - 5})" if len(found) > 5 else "")
              for t, found in paths.items()]
    return "; ".join(parts)
