"""The Iceberg output of a batch run (``--iceberg_table``): a check before the run, then, after the lake,
data files written by many workers and one commit step.

- :func:`preflight` runs before anything is read: it opens the catalog and the table
  (creating it, or adding newly documented columns), so a bad catalog URI, an unreachable
  catalog or a table whose schema conflicts ends the run with one line and exit 1 while
  the lake and the cursor are untouched.
- :func:`commit_after_lake` adds, after the lake commit (:mod:`sinks.iceberg.files`):

  ``IcebergBase`` (once: the table's current snapshot B and a commit id) ->
  ``SpreadIcebergWrites`` (one key per partition the run touched: a shuffle, so on Dataflow the
  partitions spread over the workers) -> ``WriteIcebergFiles`` (per partition: read every file
  of it from the lake, as the BigQuery merge does, so a run that crashed between the lake
  commit and Iceberg is healed by the rerun; write the rows absent at B as Iceberg data files).
  ``CommitToIceberg`` runs once, on B's one element, with every worker's files as a side input
  (all of them, in one place; cheaper on the local runner than a global combine, which needs
  a default for an empty run): **one snapshot**, re-checked if the table moved past B,
  recording the run id, the source, the counts and, for an incremental Okta run, the cursor
  the snapshot covers.

  The cursor is stored in ``--state`` (when given) after this step, so ``--state`` and the table
  move together; without ``--state`` the next run resumes from the table's cursor
  (:mod:`sinks.iceberg.cursor`).
"""

from __future__ import annotations

import apache_beam as beam

from common.metrics import counter
from sinks.iceberg.catalog import IcebergConfigError
from sinks.iceberg.commit import IcebergCommitError
from sinks.iceberg.cursor import cursor_text
from sinks.iceberg.files import base_snapshot, commit_partitions, new_commit_id, write_partition
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import connect, open_table


def preflight(target: IcebergTarget | None) -> str | None:
    """None when the Iceberg table is usable (or not asked for), else the one-line reason."""
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


def commit_after_lake(manifest, target: IcebergTarget | None, lake: str, run_id: str, source: str, raw_event: bool,
                      cursors=None):
    """Chain the Iceberg steps after the lake commit; returns the manifest PCollection (to wait on)."""
    if target is None:
        return manifest
    plan = manifest | "IcebergBase" >> beam.ParDo(_BaseFn(target))
    written = (
        plan
        | "IcebergPartitions" >> beam.FlatMap(lambda p: [(part["partition"], p["base"])
                                                         for part in p["manifest"]["partitions"]])
        | "SpreadIcebergWrites" >> beam.GroupByKey()
        | "WriteIcebergFiles" >> beam.ParDo(_WriteFilesFn(target, lake, raw_event))
    )
    cursor = beam.pvalue.AsList(cursors) if cursors is not None else None
    return plan | "CommitToIceberg" >> beam.ParDo(_CommitFn(target, run_id, source),
                                                  beam.pvalue.AsList(written), cursor)


class _BaseFn(beam.DoFn):
    """Open the table (creating or evolving it) and fix the snapshot every worker checks keys against."""

    def __init__(self, target):
        self.target = target

    def process(self, manifest):
        _, base = base_snapshot(connect(self.target), self.target)
        yield {"manifest": manifest, "base": base, "commit_id": new_commit_id()}


class _WriteFilesFn(beam.DoFn):
    """One partition's absent rows as Iceberg data files, not committed (runs on any worker)."""

    def __init__(self, target, lake, raw_event):
        self.target, self.lake, self.raw_event = target, lake, raw_event

    def setup(self):
        self._catalog = self._table = None

    def process(self, element):
        partition, bases = element
        base = next(iter(bases))
        yield write_partition(self._table_holding(base), self.lake, partition, base, self.raw_event)

    def _table_holding(self, base):
        """The table, loaded once per worker (again only if it predates the base snapshot)."""
        if self._table is None or (base is not None and self._table.metadata.snapshot_by_id(base) is None):
            self._catalog = self._catalog or connect(self.target)
            self._table = self._catalog.load_table(self.target.table)
        return self._table


class _CommitFn(beam.DoFn):
    """Commit every worker's data files as one snapshot (runs once, after all of them)."""

    def __init__(self, target, run_id, source):
        self.target, self.run_id, self.source = target, run_id, source

    def process(self, plan, written, cursors=None):
        manifest = plan["manifest"]
        summary = {"run-id": self.run_id, "source": self.source,
                   "lake-events-written": sum(p["events"] for p in manifest["partitions"])}
        cursor = cursor_text(cursors)  # each org's, with its org and filter: a restart can resume from it
        if cursor:
            summary["cursor"] = cursor
        result = commit_partitions(connect(self.target), self.target, written, plan["base"], plan["commit_id"],
                                   summary)
        counter("iceberg_rows_added").inc(result.rows_added)
        counter("iceberg_rows_present").inc(result.rows_present)
        yield {**manifest, "iceberg": {"table": self.target.table, **result.as_dict()}}
