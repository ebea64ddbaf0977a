"""The Iceberg output of a batch run (``--iceberg_table``): a check before the run, one commit step after the lake.

- :func:`preflight` runs before anything is read: it opens the catalog and the table
  (creating it, or adding newly documented columns), so a bad catalog URI, an unreachable
  catalog or a table whose schema conflicts ends the run with one line and exit 1 while
  the lake and the cursor are untouched.
- :func:`commit_after_lake` adds one step after the lake commit: it reads every file of
  each partition the run touched (as the BigQuery merge does, so a run that crashed
  between the lake commit and Iceberg is healed by the rerun) and commits the rows absent
  from the table as **one snapshot** (:func:`sinks.iceberg_table.commit_rows`), recording
  the run id, the source, the counts and, for an incremental Okta run, the cursor the
  snapshot covers. The cursor is stored in ``--state`` (when given) after this step, so
  ``--state`` and the table move together; without ``--state`` the next run resumes from the
  table's cursor (:mod:`sinks.iceberg_cursor`).
"""

from __future__ import annotations

import apache_beam as beam

from sinks.iceberg_catalog import IcebergConfigError, target_from_options
from sinks.iceberg_cursor import cursor_text
from sinks.iceberg_table import IcebergCommitError, commit_lake_files, connect, open_table
from transforms.metrics import counter


def preflight(options) -> str | None:
    """None when the Iceberg table is usable (or not asked for), else the one-line reason."""
    target = target_from_options(options)
    if target is None:
        return None
    try:
        open_table(connect(target), target)
    except (IcebergConfigError, IcebergCommitError) as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - anything the catalog raises, as one line
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        return f"the Iceberg table {target.describe()} cannot be opened: {exc.__class__.__name__}: {text}"
    return None


def commit_after_lake(manifest, options, lake: str, run_id: str, cursors=None):
    """Chain the Iceberg commit after the lake commit; returns the manifest PCollection (to wait on)."""
    target = target_from_options(options)
    if target is None:
        return manifest
    cursor = beam.pvalue.AsList(cursors) if cursors is not None else None
    return manifest | "CommitToIceberg" >> beam.ParDo(
        _CommitFn(target, lake, run_id, options.source, options.raw_event), cursor)


def _cursor_text(cursors) -> str | None:
    return cursor_text(cursors)  # each org's cursor, with its org and filter: a restart can resume from it


class _CommitFn(beam.DoFn):
    """Commit the partitions the run touched to Iceberg, as one snapshot (runs once, after the lake)."""

    def __init__(self, target, lake, run_id, source, raw_event):
        self.target, self.lake, self.run_id = target, lake, run_id
        self.source, self.raw_event = source, raw_event

    def process(self, manifest, cursors=None):
        partitions = [p["partition"] for p in manifest["partitions"]]
        summary = {"run-id": self.run_id, "source": self.source,
                   "lake-events-written": sum(p["events"] for p in manifest["partitions"])}
        cursor = _cursor_text(cursors)
        if cursor:
            summary["cursor"] = cursor
        result = commit_lake_files(connect(self.target), self.target, self.lake,
                                   [(p, None) for p in partitions], summary, self.raw_event)
        counter("iceberg_rows_added").inc(result.rows_added)
        counter("iceberg_rows_present").inc(result.rows_present)
        yield {**manifest, "iceberg": {"table": self.target.table, **result.as_dict()}}
