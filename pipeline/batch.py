"""The batch pipeline: source -> PersonalEventsToRows -> WriteLake (-> BigQuery) (-> cursor), and its run.

Three paths, one graph shape (docs/ARCHITECTURE.md):

- ``file``: exported files (:class:`~sources.files.beam.ReadExportedFiles`);
- ``backfill``: ``--since``/``--until`` of the System Log, sliced (:class:`~sources.okta.beam.ReadSystemLogRange`);
- ``incremental``: from the cursor in ``--state`` (:class:`~sources.okta.beam.ReadSystemLogTail`), whose new
  cursor is stored only after the lake (and BigQuery, Iceberg) commit (:class:`~sources.okta.beam.StoreCursor`);
  with ``--iceberg_table``, from the newest cursor the table records (``--state`` then optional).
"""

from __future__ import annotations

import logging
import sys

import apache_beam as beam

from common.durations import rfc3339
from pipeline.config import RunConfig
from pipeline.runner import beam_tracebacks_hidden
from pipeline.summary import RunSummary
from schemas.arrow import file_schema
from sinks.bigquery.beam import merge_step
from sinks.iceberg import beam as iceberg_output
from sinks.lake import staging
from sinks.lake.beam import WriteLake
from sources.files.beam import ExportedFilesToRows, ReadExportedFiles
from sources.files.pool import default_processes
from sources.okta.beam import (
    CURSOR,
    ORG_REPORTS,
    ReadOrgsRange,
    ReadOrgsTail,
    ReadSystemLogRange,
    ReadSystemLogTail,
    StoreCursor,
)
from transforms.beam import PersonalEventsToRows


def read_source(pipeline: beam.Pipeline, config: RunConfig):
    """(RawBatch pages, cursor PCollection or None, manifest description)."""
    if config.mode == "file":
        batches = pipeline | "ReadExportedFiles" >> ReadExportedFiles(config.inputs,
                                                                      batch_size=config.decode.batch_size)
        return batches, None, {"input": config.inputs}
    okta = config.okta
    if okta.orgs_file:
        return read_orgs(pipeline, config)
    settings = okta.org
    described = {"okta": settings.describe(), "okta_org_url": settings.org_url, "filter": settings.filter}
    if config.mode == "backfill":
        batches = pipeline | "ReadSystemLogRange" >> ReadSystemLogRange(settings, okta.since, okta.until,
                                                                        okta.slice_length)
        return batches, None, {**described, "since": rfc3339(okta.since), "until": rfc3339(okta.until)}
    tail = pipeline | "ReadSystemLogTail" >> ReadSystemLogTail(settings, okta.state, okta.lookback, config.run_id,
                                                                config.iceberg)
    return tail.pages, tail[CURSOR], {**described, "state": okta.state}


def read_orgs(pipeline: beam.Pipeline, config: RunConfig):
    """Many orgs (``--orgs``): (pages, cursors or None, description with the org reports under ``org_reports``)."""
    okta = config.okta
    orgs = list(okta.orgs)
    described = {"org_sources": [{"org": org.host, "okta": org.settings.describe(), "filter": org.settings.filter,
                                  "event_types": org.event_types, "state": org.state} for org in orgs]}
    if config.mode == "backfill":
        read = pipeline | "ReadOrgsRange" >> ReadOrgsRange(orgs, okta.since, okta.until, okta.slice_length)
        return read.pages, None, {**described, "since": rfc3339(okta.since), "until": rfc3339(okta.until),
                                  ORG_REPORTS: read[ORG_REPORTS]}
    read = pipeline | "ReadOrgsTail" >> ReadOrgsTail(orgs, okta.lookback, config.run_id)
    return read.pages, read[CURSOR], {**described, ORG_REPORTS: read[ORG_REPORTS]}


def decode_processes(config: RunConfig) -> int:
    """How many local processes decode a file replay (1: none, the Beam graph does it; always 1 on Dataflow)."""
    if config.mode != "file" or not config.local:
        return 1
    return config.files.decode_processes or default_processes()


def build(pipeline: beam.Pipeline, config: RunConfig):
    """Wire the batch pipeline; returns the PCollection holding the run manifest."""
    decode, lake = config.decode, config.lake
    processes = decode_processes(config)
    if processes > 1:
        rows, dead, tallies = pipeline | "ExportedFilesToRows" >> ExportedFilesToRows(
            config.inputs, processes, decode, config.progress_interval)
        cursors, reports, described = None, None, {"input": config.inputs}
    else:
        batches, cursors, described = read_source(pipeline, config)
        reports = described.pop(ORG_REPORTS, None)
        org_event_types = {org["org"]: org["event_types"] for org in described.get("org_sources", [])}
        rows, dead, tallies = batches | "PersonalEventsToRows" >> PersonalEventsToRows(
            decode, config.progress_interval, whole_batches=True, org_event_types=org_event_types or None)
    written = (rows, dead, tallies) if reports is None else (rows, dead, tallies, reports)
    manifest = written | "WriteLake" >> WriteLake(
        lake.root, lake.dead_letter, config.run_id, file_schema(decode.raw_event),
        compression=lake.compression, started_at=config.started.isoformat(),
        description={"source": config.source, "run_kind": config.run_kind, **described,
                     "event_types": decode.event_types, "dead_letter": lake.dead_letter},
    )
    if config.bigquery is not None:
        # After the lake commit; the cursor below then waits for BigQuery too.
        manifest = manifest | "MergeIntoBigQuery" >> merge_step(config.bigquery, lake.root, config.run_id)
    # After the lake (and BigQuery): one Iceberg snapshot; the cursor below waits for it too.
    manifest = iceberg_output.commit_after_lake(manifest, config.iceberg, lake.root, config.run_id, config.source,
                                                decode.raw_event, cursors)
    if cursors is not None:
        cursors | "StoreCursor" >> StoreCursor(config.okta.state, manifest, lake=lake.root)
    return manifest


def run(pipeline_options, config: RunConfig) -> int:
    """Run (locally: wait, print the summary and check it balances) or submit (a service: return at once)."""
    from pipeline.failures import EXIT_FATAL, EXIT_RETRYABLE, RunFailed, failure, failure_from_line

    pipeline = beam.Pipeline(options=pipeline_options)
    build(pipeline, config)
    if not config.local:
        return submit(pipeline, config)
    try:
        with beam_tracebacks_hidden(not config.verbose):
            result = pipeline.run()
            result.wait_until_finish()
    except Exception as exc:  # noqa: BLE001 - a failed run is reported as one line, not a Beam traceback
        discard_staging(config)
        raise RunFailed(failure(exc), batch_outcome(config)) from exc

    summary = RunSummary.collect(result, config.lake.root, config.run_id, config.started, config.manifest)
    print(summary.render())
    if not summary.balanced:
        print("error: the run's counts do not balance (see above); please report this", file=sys.stderr)
        return EXIT_FATAL
    if summary.failed_orgs:
        verdicts = []
        for org, error in summary.failed_orgs.items():
            cause = failure_from_line(error)
            verdicts.append(cause.retryable)
            print(f"error: org {org} failed: {error} ({org_outcome(config)}) ({cause.verdict()})", file=sys.stderr)
        # Rerun as is only when every failed org may then succeed.
        return EXIT_RETRYABLE if all(verdicts) else EXIT_FATAL
    return 0


def discard_staging(config: RunConfig) -> None:
    """A failed run removes what it staged (a rerun stages again); its committed files stay, whole."""
    try:
        staging.discard(config.lake.root, config.run_id)
    except Exception as exc:  # noqa: BLE001 - the run's own failure is the one to report
        logging.getLogger(__name__).warning("could not remove the failed run's staging: %s", exc)


def org_outcome(config: RunConfig) -> str:
    """What a failed org leaves behind, for its error line (the other orgs are committed).

    Nothing: its rows and dead letters are withheld at the commit (:class:`sinks.lake.beam.WriteLake`).
    """
    if config.mode == "incremental":
        return ("nothing of it was committed and its cursor was not stored: the next run reads it again "
                "from the old cursor, without duplicates")
    return "nothing of it was committed; rerun the backfill to complete it, without duplicates"


def batch_outcome(config: RunConfig) -> str:
    """What a failed batch run leaves behind, for the error line."""
    if config.mode == "incremental":
        return "no cursor was stored; rerunning is safe"
    return "rerunning is safe: the lake keeps each uuid once"


def submit(pipeline: beam.Pipeline, config: RunConfig) -> int:
    """Dataflow and other services: submit and return (a Flex Template launcher must not wait)."""
    result = pipeline.run()
    if config.dry_run:
        print(f"dry run {config.run_id}: the pipeline was translated into a job request; nothing was submitted "
              "and nothing was written", file=sys.stderr)
        return 0
    job = getattr(result, "job_id", None)
    # The job's own counters are in the Dataflow UI, namespace okta_personal.
    print(f"submitted run {config.run_id}" + (f" as job {job()}" if callable(job) else ""), file=sys.stderr)
    return 0
