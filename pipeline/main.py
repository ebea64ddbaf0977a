"""Entry point: ``python -m pipeline [options]``.

Validates the options (every problem reported on one line before anything
starts), wires source -> :class:`~transforms.personal_rows.PersonalEventsToRows`
-> :class:`~sinks.lake.WriteLake`, runs it, then prints the run summary and
checks the conservation identity
``read == kept + filtered out + duplicates + dead letters``.

Exit codes: 0 done, 1 the run failed or its counts do not balance,
2 bad options.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import logging
import re
import secrets
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    _BeamArgumentParser,
)

from pipeline.options import LakeOptions, input_patterns, validate
from pipeline.quiet import beam_tracebacks_hidden
from pipeline.summary import RunSummary
from schemas.arrow import file_schema
from sinks import fs
from sinks.bigquery import merge_step
from sinks.lake import WriteLake
from sinks.lake_files import DEFAULT_DEAD_LETTER_DIR
from okta_client.urls import normalise_org_url
from pipeline.options import parse_duration, parse_time
from sources.files import ReadExportedFiles
from sources.okta import CURSOR, ReadSystemLogRange, ReadSystemLogTail, StoreCursor
from sources.okta_config import OktaSettings
from sources.okta_stream import TailSettings, TailSystemLogToLake
from sources.okta_stream import run_locally as run_tail_locally
from sources.pubsub_local import PubSubSettings
from sources.pubsub_local import run_locally as run_pubsub_locally
from sources.pubsub import ReadPubSubBatches
from sinks.stream_lake import WriteLakeWindows
from transforms.personal_rows import PersonalEventsToRows
from transforms.selection import EventTypeSelection

LOCAL_RUNNERS = {"fnapirunner", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner",
                 "prismrunner"}


def unknown_flags(argv: list[str]) -> list[str]:
    """Flags no Beam or pipeline option knows, each with a suggestion when one is close."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    seen = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    _, unknown = parser.parse_known_args(argv)
    known = [o for action in parser._actions for o in action.option_strings]
    messages = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        if not name.startswith("-"):
            messages.append(f"unexpected argument {arg!r}")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        messages.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return messages


def new_run_id(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def is_local_runner(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner else "fnapirunner"
    return name.lower() in LOCAL_RUNNERS or name.lower() + "runner" in LOCAL_RUNNERS


def okta_settings(options: LakeOptions) -> OktaSettings:
    selection = EventTypeSelection.parse(options.event_types)
    return OktaSettings(
        org_url=normalise_org_url(options.okta_org_url),
        token_file=options.okta_token_file,
        client_id=options.okta_client_id,
        private_key_file=options.okta_private_key_file,
        key_id=options.okta_key_id,
        scopes=tuple(options.okta_scopes.split()),
        dpop=options.okta_dpop,
        rate_share=options.okta_rate_share,
        page_limit=options.okta_page_limit,
        filter=selection.scim_filter() if options.okta_filter_pushdown else "",
    )


def read_source(pipeline: beam.Pipeline, options: LakeOptions, run_id: str):
    """(RawBatch pages, cursor PCollection or None, manifest description)."""
    if options.source == "file":
        batches = pipeline | "ReadExportedFiles" >> ReadExportedFiles(
            input_patterns(options), batch_size=options.batch_size)
        return batches, None, {"input": input_patterns(options)}
    settings = okta_settings(options)
    described = {"okta": settings.describe(), "filter": settings.filter}
    if options.since:
        since, until = parse_time(options.since, "--since"), parse_time(options.until, "--until")
        batches = pipeline | "ReadSystemLogRange" >> ReadSystemLogRange(
            settings, since, until, parse_duration(options.slice, "--slice"))
        return batches, None, {**described, "since": options.since, "until": options.until}
    tail = pipeline | "ReadSystemLogTail" >> ReadSystemLogTail(
        settings, options.state, parse_duration(options.lookback, "--lookback"), run_id)
    return tail.pages, tail[CURSOR], {**described, "state": options.state}


def build(pipeline: beam.Pipeline, options: LakeOptions, run_id: str, started_at: str):
    """Wire the batch pipeline; returns the PCollection holding the run manifest."""
    lake = options.output.rstrip("/")
    dead_letter = (options.dead_letter or fs.join(lake, DEFAULT_DEAD_LETTER_DIR)).rstrip("/")
    progress_interval = 0 if options.quiet else options.progress_interval
    if not is_local_runner(options):
        progress_interval = 0  # workers log elsewhere; Beam's own monitoring shows progress

    batches, cursors, described = read_source(pipeline, options, run_id)
    rows, dead = batches | "PersonalEventsToRows" >> PersonalEventsToRows(
        options.event_types, options.raw_event, options.max_dead_letter_payload_bytes,
        progress_interval, whole_batches=True)
    manifest = (rows, dead) | "WriteLake" >> WriteLake(
        lake, dead_letter, run_id, file_schema(options.raw_event),
        compression=options.compression, started_at=started_at,
        description={"source": options.source, **described,
                     "event_types": options.event_types, "dead_letter": dead_letter},
    )
    if options.bigquery_table:
        # After the lake commit; the cursor below then waits for BigQuery too.
        manifest = manifest | "MergeIntoBigQuery" >> merge_step(bigquery_target(options), lake, run_id)
    if cursors is not None:
        cursors | "StoreCursor" >> StoreCursor(options.state, manifest)
    return manifest


def bigquery_target(options: LakeOptions):
    from sinks.bigquery import BigQueryTarget

    if not options.bigquery_table:
        return None
    return BigQueryTarget(options.bigquery_table, options.raw_event, options.bigquery_endpoint)


def print_help() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Okta System Log personal.* events -> Hive-partitioned Parquet lake. "
                    "Every Apache Beam pipeline option (--runner, --project, --region, "
                    "--temp_location, --direct_num_workers, ...) is accepted too.")
    LakeOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.print_help()


def unmatched_inputs(patterns: list[str]) -> list[str]:
    """The --input globs that match no file, each as an error line."""
    from apache_beam.io.filesystems import FileSystems

    problems = []
    for pattern in patterns:
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # bad scheme, no access, ...
            problems.append(f"--input {pattern!r} cannot be listed: {exc.__class__.__name__}: {exc}")
            continue
        if not found:
            problems.append(f"--input {pattern!r} matched no files")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        print_help()
        return 0
    problems = unknown_flags(argv)
    try:
        pipeline_options = PipelineOptions(argv)
        options = pipeline_options.view_as(LakeOptions)
        problems += validate(options)
    except (argparse.ArgumentError, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code == 0:  # --help
            return 0
        return 2
    if not problems and options.source == "file":
        fs_options_set(pipeline_options)
        problems += unmatched_inputs(input_patterns(options))
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("Run `python -m pipeline --help` for every option.", file=sys.stderr)
        return 2

    # Beam logs a worker failure with its whole traceback; we print the cause as one line instead.
    logging.getLogger("apache_beam").setLevel(logging.WARNING if options.verbose else logging.CRITICAL)
    standard = pipeline_options.view_as(StandardOptions)
    if standard.streaming:
        return run_streaming(pipeline_options, options)
    if standard.runner is None:
        # Beam's default tries to download the Prism runner first; offline that fails
        # after a delay. Pick the in-process portable runner on purpose.
        standard.runner = "FnApiRunner"
        direct = pipeline_options.view_as(DirectOptions)
        if options.source == "okta" and "--direct_num_workers" not in " ".join(argv):
            # API reads wait on the network: threads let several slices be in flight.
            direct.direct_running_mode = "multi_threading"
            direct.direct_num_workers = 4
    fs_options_set(pipeline_options)

    started = _dt.datetime.now(_dt.timezone.utc)
    run_id = options.run_id or new_run_id(started)
    options.run_id = run_id
    pipeline = beam.Pipeline(options=pipeline_options)
    build(pipeline, options, run_id, started.isoformat())
    if not is_local_runner(options):
        # Dataflow and other services: submit and return (a Flex Template launcher must not wait);
        # the job's own counters are in the Dataflow UI, namespace okta_personal.
        result = pipeline.run()
        job = getattr(result, "job_id", None)
        print(f"submitted run {run_id}" + (f" as job {job()}" if callable(job) else ""), file=sys.stderr)
        return 0
    try:
        with beam_tracebacks_hidden(not options.verbose):
            result = pipeline.run()
            result.wait_until_finish()
    except Exception as exc:  # noqa: BLE001 - a failed run is reported as one line, not a Beam traceback
        print(f"error: the run failed (no cursor was stored; rerunning is safe): {failure_reason(exc)}",
              file=sys.stderr)
        return 1

    lake = options.output.rstrip("/")
    summary = RunSummary.collect(result, lake, run_id, started)
    print(summary.render())
    if not summary.balanced:
        print("error: the run's counts do not balance (see above); please report this",
              file=sys.stderr)
        return 1
    return 0


def tail_settings(options: LakeOptions, job: str) -> TailSettings:
    lake = options.output.rstrip("/")
    return TailSettings(
        state_uri=options.state, lookback=parse_duration(options.lookback, "--lookback"),
        poll_interval=parse_duration(options.poll_interval, "--poll_interval").total_seconds(),
        window=parse_duration(options.window, "--window").total_seconds(),
        dedupe_horizon=parse_duration(options.dedupe_horizon, "--dedupe_horizon").total_seconds(),
        lake=lake, dead_letter=(options.dead_letter or fs.join(lake, DEFAULT_DEAD_LETTER_DIR)).rstrip("/"),
        job=job, event_types=options.event_types, raw_event=options.raw_event, compression=options.compression,
        max_payload_bytes=options.max_dead_letter_payload_bytes, quiet=options.quiet,
        bigquery=bigquery_target(options))


def pubsub_settings(options: LakeOptions, job: str) -> PubSubSettings:
    tail = tail_settings(options, job)
    return PubSubSettings(
        subscription=options.subscription, window=tail.window, dedupe_horizon=tail.dedupe_horizon, lake=tail.lake,
        dead_letter=tail.dead_letter, job=job, event_types=tail.event_types, raw_event=tail.raw_event,
        compression=tail.compression, max_payload_bytes=tail.max_payload_bytes, quiet=tail.quiet,
        bigquery=tail.bigquery)


def tail_locally(options: LakeOptions, job: str, stop_after: float | None) -> int:
    """The Okta tail on this machine: the same tail code as the Dataflow DoFn, driven by a plain loop."""
    return _run_loop(lambda: run_tail_locally(okta_settings(options), tail_settings(options, job), stop_after),
                     job, options, "the cursor points after the last one")


def pubsub_locally(options: LakeOptions, job: str, stop_after: float | None) -> int:
    """Pub/Sub on this machine: pull, commit each window, then acknowledge it (:mod:`sources.pubsub_local`)."""
    if options.id_label:
        print("note: --id_label is used by Dataflow's ReadFromPubSub; the local loop dedupes on the events' uuid",
              file=sys.stderr, flush=True)
    return _run_loop(lambda: run_pubsub_locally(pubsub_settings(options, job), stop_after),
                     job, options, "messages of later windows are not acknowledged")


def _run_loop(loop, job: str, options: LakeOptions, resume: str) -> int:
    try:
        loop()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - reported as one line
        print(f"error: the streaming run failed (committed windows are final; {resume}): {failure_reason(exc)}",
              file=sys.stderr, flush=True)
        return 1
    print(f"stopped {job}: every window committed so far is in {options.output}; rows of the open window are "
          "read again by the next run", file=sys.stderr, flush=True)
    return 0


def build_streaming(pipeline: beam.Pipeline, options: LakeOptions, job: str) -> None:
    """Wire a streaming job: the Okta tail (commits inside the tail) or Pub/Sub -> windowed lake writes."""
    lake = options.output.rstrip("/")
    dead_letter = (options.dead_letter or fs.join(lake, DEFAULT_DEAD_LETTER_DIR)).rstrip("/")
    window = parse_duration(options.window, "--window").total_seconds()
    horizon = parse_duration(options.dedupe_horizon, "--dedupe_horizon").total_seconds()
    if options.source == "okta":
        tail = tail_settings(options, job)
        pipeline | "TailSystemLog" >> TailSystemLogToLake(okta_settings(options), tail)
        return
    batches = pipeline | "ReadPubSub" >> ReadPubSubBatches(
        options.subscription, options.id_label, options.timestamp_attribute)
    rows, dead = batches | "PersonalEventsToRows" >> PersonalEventsToRows(
        options.event_types, options.raw_event, options.max_dead_letter_payload_bytes, 0)
    (rows, dead) | "WriteLakeWindows" >> WriteLakeWindows(
        lake, dead_letter, job, file_schema(options.raw_event), window_seconds=window,
        dedupe_horizon_seconds=horizon, compression=options.compression, quiet=options.quiet,
        bigquery=bigquery_target(options))


def run_streaming(pipeline_options: PipelineOptions, options: LakeOptions) -> int:
    """Run until stopped (Ctrl-C, SIGTERM, or --stop_after); every committed window is final."""
    import os
    import threading
    import time

    standard = pipeline_options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "DirectRunner"  # falls back to the BundleBasedDirectRunner for streaming, offline too
    fs_options_set(pipeline_options)
    job = options.run_id or new_run_id()
    options.run_id = job
    described = options.subscription if options.source == "pubsub" else options.okta_org_url
    print(f"streaming {job}: {options.source} {described} -> {options.output} (windows of {options.window})",
          file=sys.stderr, flush=True)
    stop_after = parse_duration(options.stop_after, "--stop_after").total_seconds() if options.stop_after else None
    if options.source == "okta" and is_local_runner(options):
        return tail_locally(options, job, stop_after)
    if options.source == "pubsub" and options.pubsub_reader == "client" and is_local_runner(options):
        return pubsub_locally(options, job, stop_after)
    pipeline = beam.Pipeline(options=pipeline_options)
    build_streaming(pipeline, options, job)
    failure: list = []

    def run() -> None:
        try:
            with beam_tracebacks_hidden(not options.verbose):
                result = pipeline.run()
                result.wait_until_finish()
        except Exception as exc:  # noqa: BLE001
            failure.append(exc)

    runner = threading.Thread(target=run, name="pipeline", daemon=True)
    runner.start()
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while runner.is_alive() and (deadline is None or time.monotonic() < deadline):
            runner.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    if failure:
        print(f"error: the streaming run failed (committed windows are final; the cursor points after the last "
              f"one): {failure_reason(failure[0])}", file=sys.stderr, flush=True)
        os._exit(1)
    print(f"stopped {job}: every window committed so far is in {options.output}; rows of the open window are "
          "read again by the next run", file=sys.stderr, flush=True)
    # The local streaming runner has no prompt way to stop its worker threads.
    os._exit(0)


def failure_reason(exc: BaseException) -> str:
    """The error a user can act on: our own errors from under Beam's wrapping, else the first line."""
    from okta_client.errors import ConfigurationError, OktaApiError

    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OktaApiError, ConfigurationError)):
            return f"{current.__class__.__name__}: {str(current).splitlines()[0]}"
        current = current.__cause__ or current.__context__
    text = str(exc).strip()
    for line in text.splitlines():
        for marker in ("OktaApiError: ", "QueryTimeout: ", "ResponseTooLarge: ", "ConfigurationError: "):
            if marker in line:
                return line[line.index(marker):].split(" [while running")[0]
    # A worker's exception arrives as the text of its traceback: its last "SomeError: message" line.
    raised = [m.group(1) for m in re.finditer(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception): .+)$", text, re.M)]
    if raised:
        return raised[-1].split(" [while running")[0][:500]
    first = text.splitlines()[0] if text else ""
    return f"{exc.__class__.__name__}: {first}"[:500]


def fs_options_set(pipeline_options: PipelineOptions) -> None:
    """Let Beam's filesystems (S3 endpoint, credentials) see the options in this process too."""
    from apache_beam.io.filesystems import FileSystems

    FileSystems.set_options(pipeline_options)
