"""``WriteLake``: the Beam sink for the Hive-partitioned Parquet lake (batch runs).

Takes the ``(PartitionKey, pyarrow.Table)`` row batches and the dead-letter
records, stages them with bounded memory, commits each partition once
(insert-if-absent on uuid, see :mod:`sinks.lake.commit`), moves the dead
letters to ``DEAD_LETTER/<run_id>/``, then writes the run manifest
``LAKE/_runs/<run_id>.json`` and removes the staging folder, and the staging
folders of dead runs (:mod:`sinks.lake.staging`). Every DoFn that stages or
commits holds the run's staging lease while it is set up.

In a many-org run the commits take the orgs whose source failed as a side
input and withhold their rows and dead letters: a failed org leaves nothing
in the lake (so nothing in BigQuery or Iceberg, which read the lake), only
a ``withheld`` count, and its rerun completes it without duplicates.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from common import drift as drift_reports
from common.metrics import OrgCounters, count_drift, counter, measure, mirroring
from sinks.lake import staging
from sinks.lake.commit import commit_partition, newest_published
from sinks.lake.dead_letters import DeadLetterStager, commit_dead_letters, withheld_dead_letters
from sinks.lake.drift import DriftRegistry
from sinks.lake.records import RUNS_DIR
from sinks.lake.stage import PartitionStager, StagedFile
from sinks.lake.staging import staging_dir
from storage import fs
from transforms import jsonio, progress
from transforms.beam import TALLIES, Tally
from transforms.records import RowBatches


def _global(value) -> WindowedValue:
    return WindowedValue(value, GlobalWindow().max_timestamp(), [GlobalWindow()])


class StageRows(beam.DoFn):
    """Append row batches to per-partition staging files; emit the staged files."""

    def __init__(self, lake: str, run_id: str, schema, compression: str):
        self.lake, self.run_id, self.schema, self.compression = lake, run_id, schema, compression

    def setup(self):
        staging.hold(staging_dir(self.lake, self.run_id))
        self._duplicates = counter("duplicates")
        self._duplicates_in_run = counter("duplicates_in_run")
        self._by_org = OrgCounters()
        self._tally = Tally()

    def start_bundle(self):
        self._stager = PartitionStager(
            staging_dir(self.lake, self.run_id), self.schema, compression=self.compression
        )

    def process(self, batch):
        dups = 0
        for part in batch.split() if isinstance(batch, RowBatches) else (batch,):
            dups += self._stager.add(part.partition, part.table)
        if dups:
            self._duplicates.inc(dups)
            self._duplicates_in_run.inc(dups)
            self._by_org.inc(_org_of(batch.table), "duplicates", dups)
            self._tally.add(_org_of(batch.table), "duplicates_in_run", dups)
        progress.record(rows=batch.table.num_rows)
        yield from self._stager.take_finished()

    def finish_bundle(self):
        for staged in self._stager.close():
            yield _global(staged)
        yield from self._tally.emit()

    def teardown(self):
        stager = getattr(self, "_stager", None)
        if stager is not None:
            stager.abort()
        staging.release(staging_dir(self.lake, self.run_id))


def _org_of(table):
    """The okta_org of a row batch (one batch comes from one org), or None."""
    if "okta_org" not in table.column_names or not table.num_rows:
        return None
    return table.column("okta_org")[0].as_py()


class _HoldsLease(beam.DoFn):
    """Holds the run's staging lease from setup to teardown (``self.lake``, ``self.run_id``)."""

    def setup(self):
        staging.hold(staging_dir(self.lake, self.run_id))

    def teardown(self):
        staging.release(staging_dir(self.lake, self.run_id))


class StageDeadLetters(_HoldsLease):
    """Stage dead letters as JSON Lines, one file per org (``okta_org``), so a failed org's are withheld whole."""

    def __init__(self, lake: str, run_id: str):
        self.lake, self.run_id = lake, run_id

    def start_bundle(self):
        self._stagers: dict = {}

    def process(self, record):
        org = record.get("okta_org")
        stager = self._stagers.get(org)
        if stager is None:
            stager = self._stagers[org] = DeadLetterStager(staging_dir(self.lake, self.run_id), org=org)
        stager.add(record)
        yield from stager.finished
        stager.finished = []

    def finish_bundle(self):
        for stager in self._stagers.values():
            for staged in stager.close():
                yield _global(staged)


class CommitPartitions(_HoldsLease):
    """Commit one partition's staged files (runs once per partition, after all staging).

    ``failed``: the orgs whose source failed (a side input from the source's reports): their rows are
    withheld, not committed (see :func:`sinks.lake.commit.commit_partition`).
    """

    def __init__(self, lake: str, run_id: str, compression: str):
        self.lake, self.run_id, self.compression = lake, run_id, compression

    def setup(self):
        super().setup()
        self._rows = counter("rows_written")
        self._events = counter("events_written")
        self._files = counter("files_written")
        self._duplicates = counter("duplicates")
        self._dup_run = counter("duplicates_in_run")
        self._dup_lake = counter("duplicates_in_lake")
        self._withheld = counter("withheld")
        self._by_org = OrgCounters()

    def process(self, element, failed=()):
        _, staged = element
        staged = list(staged)
        started = time.monotonic()
        result = commit_partition(self.lake, staged[0].partition, staged, self.run_id,
                                  self.compression, withheld_orgs=frozenset(failed))
        if mirroring():  # --metrics_port: the commit's duration and the lag it leaves (reads one column)
            measure("commit_seconds", time.monotonic() - started)
            newest = newest_published(fs.join(self.lake, result.partition), result.files)
            if newest is not None:
                measure("newest_published", newest)
        self._rows.inc(result.rows)
        self._events.inc(result.events)
        self._files.inc(len(result.files))
        self._duplicates.inc(result.duplicates_in_run + result.duplicates_in_lake)
        self._dup_run.inc(result.duplicates_in_run)
        self._dup_lake.inc(result.duplicates_in_lake)
        self._withheld.inc(result.withheld)
        for org, tally in result.by_org.items():
            self._by_org.inc(org, "events_written", tally["events"])
            self._by_org.inc(org, "rows_written", tally["rows"])
            self._by_org.inc(org, "duplicates", tally["duplicates_in_run"] + tally["duplicates_in_lake"])
            self._by_org.inc(org, "withheld", tally["withheld"])
        yield {"kind": "partition", **result._asdict()}


class CommitDeadLetters(_HoldsLease):
    """Move one staged dead-letter file into place, unless its org failed (``failed``, a side input):
    then it stays in staging (removed with it) and its records are counted as withheld."""

    def __init__(self, lake: str, dead_letter_uri: str, run_id: str):
        self.lake, self.dead_letter_uri, self.run_id = lake, dead_letter_uri, run_id

    def setup(self):
        super().setup()
        self._withheld = counter("withheld")
        self._withheld_dead = counter("withheld_dead_letters")
        self._by_org = OrgCounters()

    def process(self, staged: StagedFile, failed=()):
        if staged.org is not None and staged.org in failed:
            stages = withheld_dead_letters(staged)
            records = sum(stages.values())
            self._withheld.inc(records)
            self._withheld_dead.inc(records)
            for stage, n in stages.items():
                if stage:
                    counter(f"withheld_dead_letters_{stage}").inc(n)
            self._by_org.inc(staged.org, "withheld", records)
            self._by_org.inc(staged.org, "withheld_dead_letters", records)
            yield {"kind": "withheld_dead_letters", "org": staged.org, "records": records}
            return
        final = commit_dead_letters(self.dead_letter_uri, staged, self.run_id)
        yield {"kind": "dead_letters", "file": final, "records": staged.rows, "org": staged.org}


class FinishRun(beam.DoFn):
    """Write the run manifest (with the run's schema drift, what is new to the lake marked) and remove the staging
    folder (runs once, last)."""

    def __init__(self, lake: str, run_id: str, started_at: str, description: dict):
        self.lake, self.run_id, self.started_at, self.description = lake, run_id, started_at, description

    def process(self, results):
        partitions = sorted((r for r in results if r["kind"] == "partition"), key=lambda r: r["partition"])
        dead = sorted((r for r in results if r["kind"] == "dead_letters"), key=lambda r: r["file"])
        manifest = {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "committed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            **self.description,
            # A partition where nothing but a failed org's rows were staged is not one the run touched.
            "partitions": [
                {k: r[k] for k in ("partition", "files", "rows", "events",
                                   "duplicates_in_run", "duplicates_in_lake")}
                for r in partitions
                if r["files"] or r["duplicates_in_run"] or r["duplicates_in_lake"] or not r.get("withheld")
            ],
            "dead_letter_files": [{"file": r["file"], "records": r["records"]} for r in dead],
        }
        withheld_dead = [r for r in results if r["kind"] == "withheld_dead_letters"]
        tallies = [r for r in results if r["kind"] == "tally"]
        manifest["counts"] = run_counts(partitions, dead, withheld_dead, tallies)
        orgs = org_breakdown(partitions, [r for r in results if r["kind"] == "org"], withheld_dead, dead, tallies)
        if orgs:
            manifest["orgs"] = orgs
            manifest["withheld_events"] = sum(o["withheld_events"] for o in orgs.values())
            manifest["withheld_dead_letters"] = sum(o["withheld_dead_letters"] for o in orgs.values())
        drift = run_drift(self.lake, self.run_id, [r["drift"] for r in results if r["kind"] == "drift"])
        if drift:
            manifest["drift"] = drift
        fs.write_bytes(fs.join(self.lake, RUNS_DIR, f"{self.run_id}.json"),
                       jsonio.dumps(manifest))
        ours = staging_dir(self.lake, self.run_id)
        staging.discard(self.lake, self.run_id)
        try:
            staging.remove_stale(self.lake, keep=ours)
        except Exception as exc:  # noqa: BLE001 - tidying up after others must not fail a committed run
            logging.getLogger(__name__).warning("could not remove stale staging: %s", exc)
        yield manifest


def run_drift(lake: str, run_id: str, reports: list[dict]) -> dict:
    """The run's schema drift (the reading steps' reports added up), what is new to the lake marked and counted."""
    drift: dict = {}
    for report in reports:
        drift_reports.merge(drift, report)
    if drift and DriftRegistry(lake).register_quietly(drift, run_id):
        count_drift(drift, news_only=True)
    return drift_reports.sorted_report(drift)


def run_counts(partitions: list[dict], dead: list[dict], withheld_dead: list[dict], tallies: list[dict]) -> dict:
    """The run's counts as its summary prints them (``read = written + filtered + duplicates + dead letters +
    withheld``), from the commits' results and the reading steps' tallies."""
    def tally(name: str) -> int:
        return sum(t.get(name, 0) for t in tallies)

    withheld_events = sum(p.get("withheld", 0) for p in partitions)
    withheld_dead_letters = sum(r["records"] for r in withheld_dead)
    in_run = tally("duplicates_in_run") + sum(p["duplicates_in_run"] for p in partitions)
    in_lake = sum(p["duplicates_in_lake"] for p in partitions)
    return {"events_read": tally("events_read"), "events_written": sum(p["events"] for p in partitions),
            "rows_written": sum(p["rows"] for p in partitions), "filtered_out": tally("filtered_out"),
            "duplicates": in_run + in_lake, "duplicates_in_run": in_run, "duplicates_in_lake": in_lake,
            "dead_letters": sum(r["records"] for r in dead), "withheld": withheld_events + withheld_dead_letters}


def org_breakdown(partitions: list[dict], reports: list[dict], withheld_dead: list[dict] = (),
                  dead: list[dict] = (), tallies: list[dict] = ()) -> dict:
    """The manifest's ``orgs``: per org, what was read, committed and withheld, and whether its source finished.

    ``{host: {"status": "ok" | "failed", "error": str | None, "events_read", "events_written", "rows_written",
    "filtered_out", "duplicates", "duplicates_in_run", "duplicates_in_lake", "dead_letters", "withheld_events",
    "withheld_dead_letters"}}``, the same counts as the summary's per-org lines: ``reports`` are the source's
    ``{"kind": "org", "org", "status", "error"}`` records (many-org API runs), partitions give the commit
    counts, ``dead`` the committed dead-letter files, ``withheld_dead`` a failed org's uncommitted ones,
    ``tallies`` what the reading steps counted (read, filtered, duplicates before the commit).
    """
    orgs: dict = {}

    def entry(org: str) -> dict:
        return orgs.setdefault(org, {"status": "ok", "error": None, "events_read": 0, "events_written": 0,
                                     "rows_written": 0, "filtered_out": 0, "duplicates": 0, "duplicates_in_run": 0,
                                     "duplicates_in_lake": 0, "dead_letters": 0, "withheld_events": 0,
                                     "withheld_dead_letters": 0})

    for report in sorted(reports, key=lambda r: r["org"]):
        found = entry(report["org"])
        if report["status"] != "ok":
            found["status"], found["error"] = report["status"], report["error"]
    for part in partitions:
        for org, counts in (part.get("by_org") or {}).items():
            found = entry(org)
            found["events_written"] += counts["events"]
            found["rows_written"] += counts["rows"]
            found["duplicates_in_run"] += counts["duplicates_in_run"]
            found["duplicates_in_lake"] += counts["duplicates_in_lake"]
            found["withheld_events"] += counts.get("withheld", 0)
    for record in tallies:
        if record["org"] is not None:
            found = entry(record["org"])
            found["events_read"] += record.get("events_read", 0)
            found["filtered_out"] += record.get("filtered_out", 0)
            found["duplicates_in_run"] += record.get("duplicates_in_run", 0)
    for record in dead:
        if record.get("org") is not None:
            entry(record["org"])["dead_letters"] += record["records"]
    for record in withheld_dead:
        entry(record["org"])["withheld_dead_letters"] += record["records"]
    for found in orgs.values():
        found["duplicates"] = found["duplicates_in_run"] + found["duplicates_in_lake"]
    return dict(sorted(orgs.items()))


class WriteLake(beam.PTransform):
    """Write ``RowBatch`` / ``RowBatches`` elements and dead letters to the lake; output: the run manifest.

    The input is ``(rows, dead_letters, tallies)`` or ``(rows, dead_letters, tallies, org_reports)``: the
    reading steps' ``TALLIES`` records (the manifest's counts sum them), and a many-org source's
    per-org outcome records, which the manifest's ``orgs`` breakdown shows. The rows and dead letters
    of an org reported failed are withheld: counted (``withheld``), never committed.
    """

    def __init__(self, lake: str, dead_letter: str, run_id: str, schema, *,
                 compression: str = fs.PARQUET_COMPRESSION, started_at: str = "",
                 description: dict | None = None):
        super().__init__()
        self.lake, self.dead_letter, self.run_id = lake, dead_letter, run_id
        self.schema, self.compression = schema, compression
        self.started_at, self.description = started_at, description or {}

    def expand(self, inputs):
        rows, dead_letters, tallies, *reports = inputs
        # The orgs whose source failed: nothing of theirs is committed (a side input, so every commit
        # waits for every org's report, i.e. for all reading to end).
        failed = [beam.pvalue.AsList(
            reports[0] | "FailedOrgs" >> beam.FlatMap(lambda r: [r["org"]] if r["status"] != "ok" else []))
        ] if reports else []
        staged_rows = rows | "StageRows" >> beam.ParDo(
            StageRows(self.lake, self.run_id, self.schema, self.compression)).with_outputs(TALLIES, main="staged")
        committed_rows = (
            staged_rows.staged
            | "ByPartition" >> beam.Map(lambda s: (s.partition.path(), s))
            | "GroupStaged" >> beam.GroupByKey()
            | "CommitPartitions" >> beam.ParDo(CommitPartitions(self.lake, self.run_id, self.compression),
                                               *failed)
        )
        committed_dead = (
            dead_letters
            | "StageDeadLetters" >> beam.ParDo(StageDeadLetters(self.lake, self.run_id))
            # A fusion break, so only files of successful bundles are ever committed.
            | "AfterStaging" >> beam.Reshuffle()
            | "CommitDeadLetters" >> beam.ParDo(CommitDeadLetters(self.lake, self.dead_letter, self.run_id),
                                                *failed)
        )
        tallies = (tallies, staged_rows[TALLIES]) | "AllTallies" >> beam.Flatten()
        return (
            (committed_rows, committed_dead, tallies, *reports)
            | "AllCommits" >> beam.Flatten()
            | "Collect" >> beam.combiners.ToList()
            | "FinishRun" >> beam.ParDo(
                FinishRun(self.lake, self.run_id, self.started_at, self.description))
        )
