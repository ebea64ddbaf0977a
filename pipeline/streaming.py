"""Streaming runs (``--streaming``): the four paths, wired and run until stopped.

- Okta tail, local runner: :func:`streaming.okta_tail.run_locally`, a plain loop in this process;
- Okta tail, Dataflow: :class:`streaming.beam.TailSystemLogToLake` (the same tail in a stateful DoFn);
- Pub/Sub, local runner: :func:`streaming.pubsub_loop.run_locally` (``--pubsub_reader=client``, the default);
- Pub/Sub, Beam's reader: :class:`sources.pubsub.beam.ReadPubSubBatches` -> :class:`streaming.beam.WriteLakeWindows`
  (Dataflow, or ``--pubsub_reader=beam`` locally).

Which path a run takes locally is :func:`pipeline.runner.local_loop`'s decision.
Every committed window is final; the open one is read again by the next run.
"""

from __future__ import annotations

import sys

import apache_beam as beam

from pipeline import runner as local_runner
from pipeline.config import RunConfig
from pipeline.failures import RunFailed, failure
from sources.pubsub.beam import ReadPubSubBatches
from streaming import okta_tail, pubsub_loop
from streaming.beam import TailOrgsToLake, TailSystemLogToLake, WriteLakeWindows
from transforms.beam import PersonalEventsToRows

RESUME = {"okta": "the cursor points after the last one", "pubsub": "messages of later windows are not acknowledged"}


def build(pipeline: beam.Pipeline, config: RunConfig) -> None:
    """Wire a streaming job: the Okta tail (commits inside the tail) or Pub/Sub -> windowed lake writes."""
    options = config.options
    if options.source == "okta" and options.orgs:
        pipeline | "TailOrgs" >> TailOrgsToLake(config.orgs(), config.tail())
        return
    if options.source == "okta":
        pipeline | "TailSystemLog" >> TailSystemLogToLake(config.okta(), config.tail())
        return
    batches = pipeline | "ReadPubSub" >> ReadPubSubBatches(
        options.subscription, options.id_label, options.timestamp_attribute)
    rows, dead = batches | "PersonalEventsToRows" >> PersonalEventsToRows(
        options.event_types, options.raw_event, options.max_dead_letter_payload_bytes, 0, org=options.okta_org)
    (rows, dead) | "WriteLakeWindows" >> WriteLakeWindows(config.window())


def run(pipeline_options, config: RunConfig) -> int:
    """Run until stopped (Ctrl-C, SIGTERM, or --stop_after); on a service, submit and return."""
    options = config.options
    described = options.subscription if options.source == "pubsub" else (options.okta_org_url or options.orgs)
    print(f"streaming {config.run_id}: {options.source} {described} -> {options.output} "
          f"(windows of {options.window})", file=sys.stderr, flush=True)
    loop = local_runner.local_loop(pipeline_options, options.source, options.pubsub_reader)
    if loop == "okta" and options.orgs:
        return run_loop(lambda: okta_tail.run_orgs_locally(config.orgs(), config.tail(), config.stop_after()), config)
    if loop == "okta":
        return run_loop(lambda: okta_tail.run_locally(config.okta(), config.tail(), config.stop_after()), config)
    if loop == "pubsub":
        if options.id_label:
            print("note: --id_label is used by Dataflow's ReadFromPubSub; the local loop dedupes on the events' "
                  "uuid", file=sys.stderr, flush=True)
        return run_loop(lambda: pubsub_loop.run_locally(config.pubsub(), config.stop_after()), config)
    pipeline = beam.Pipeline(options=pipeline_options)
    build(pipeline, config)
    if not config.local:
        from pipeline.batch import submit

        return submit(pipeline, config)
    error = local_runner.run_streaming_graph(pipeline, config.stop_after(), hide_tracebacks=not options.verbose)
    sys.stdout.flush()
    if error is not None:
        failed = RunFailed(failure(error), committed(config), streaming=True)
        print(f"error: {failed}", file=sys.stderr, flush=True)
        local_runner.exit_now(failed.exit_code)
    print(stopped(config), file=sys.stderr, flush=True)
    local_runner.exit_now(0)
    return 0  # not reached


def committed(config: RunConfig) -> str:
    return f"committed windows are final; {RESUME[config.source]}"


def stopped(config: RunConfig) -> str:
    return (f"stopped {config.run_id}: every window committed so far is in {config.options.output}; rows of the "
            "open window are read again by the next run")


def run_loop(loop, config: RunConfig) -> int:
    try:
        loop()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise RunFailed(failure(exc), committed(config), streaming=True) from exc
    print(stopped(config), file=sys.stderr, flush=True)
    return 0
