"""After a window is committed to the lake: its counters, its BigQuery rows, its Iceberg snapshot, its one line.

Every streaming path ends here, whichever runner: the window buffer of the
local loops and the Okta tail (:mod:`streaming.window_buffer`) and the
commit DoFns of Beam's Pub/Sub graph (:mod:`streaming.beam`).
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Sequence

from common.metrics import counter
from sinks.iceberg.windows import committer
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
    """With ``--iceberg_table``: the window's committed lake files as one Iceberg snapshot (else nothing).

    Called once per window after all of its lake commits, and before the caller stores the Okta
    cursor or acknowledges Pub/Sub messages. The summary holds the job, the window, the source, the
    lake's counts and, for the Okta tail, the cursor after the window. A partition the lake said
    already held some of the window's rows (a replay after a crash between the lake and Iceberg
    commits) is re-read whole, so the table catches up with the lake; insert-if-absent keeps it
    free of duplicates. Returns :class:`sinks.iceberg.commit.CommitResult` or None.
    """
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


def report_window(settings: WindowSettings, start: float, results: Sequence[WindowCommit], latency: str,
                  read: int | None = None, duplicates: int = 0) -> None:
    """Count one commit of a window and print its progress line (unless quiet); ``latency`` ends the line: how
    fresh the committed events are (the window buffer's "committed 0.4 s (max 0.6 s) after receipt, 3.1 s (max
    6.5 s) after published", medians and maxima), or how long after the window's end Beam committed it.

    ``duplicates``: the window's events dropped before its commit (a repeat within its reads or the dedupe
    horizon); the commit adds those already in the lake."""
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
    print(f"window {begin:%Y-%m-%d %H:%M:%S}-{end:%H:%M:%S}: {read_text}wrote {rows:,} rows ({events:,} events) in "
          f"{len(partitions)} partition(s), {dead} dead letters, {duplicates} duplicates; {latency}",
          file=sys.stderr, flush=True)
