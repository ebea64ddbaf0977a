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

import datetime as _dt
import sys

import apache_beam as beam

from common import drift as drift_reports
from common.durations import describe
from common.metrics import FRESHNESS, freshness_totals, process_totals, take_drift_totals
from pipeline import runner as local_runner
from pipeline.config import RunConfig
from pipeline.failures import RunFailed, failure
from pipeline.summary import RunSummary, committed_dead_letters
from sources.pubsub.beam import ReadPubSubBatches
from streaming import okta_tail, pubsub_loop
from streaming.beam import TailOrgsToLake, TailSystemLogToLake, WriteLakeWindows
from transforms.beam import PersonalEventsToRows

#: The run summary's freshness lines (one per :data:`common.metrics.FRESHNESS` reading).
FRESHNESS_LABELS = {"receipt_to_commit_seconds": "received -> committed",
                    "published_to_commit_seconds": "published -> committed"}
assert set(FRESHNESS_LABELS) == set(FRESHNESS)
RESUME = {"okta": "the cursor points after the last one", "pubsub": "messages of later windows are not acknowledged"}


def build(pipeline: beam.Pipeline, config: RunConfig) -> None:
    """Wire a streaming job: the Okta tail (commits inside the tail) or Pub/Sub -> windowed lake writes."""
    if config.source == "okta" and config.okta.orgs_file:
        pipeline | "TailOrgs" >> TailOrgsToLake(config.okta.orgs, config.tail)
        return
    if config.source == "okta":
        pipeline | "TailSystemLog" >> TailSystemLogToLake(config.okta.org, config.tail)
        return
    pubsub = config.pubsub
    batches = pipeline | "ReadPubSub" >> ReadPubSubBatches(pubsub.subscription, pubsub.id_label,
                                                           pubsub.timestamp_attribute)
    rows, dead, _ = batches | "PersonalEventsToRows" >> PersonalEventsToRows(config.decode, 0)
    (rows, dead) | "WriteLakeWindows" >> WriteLakeWindows(config.window)


def run(pipeline_options, config: RunConfig) -> int:
    """Run until stopped (Ctrl-C, SIGTERM, or --stop_after); on a service, submit and return."""
    if config.source == "pubsub":
        described = config.pubsub.subscription
    else:
        described = config.okta.orgs_file or config.okta.org.org_url
    print(f"streaming {config.run_id}: {config.source} {described} -> {config.lake.root} "
          f"(windows of {describe(config.stream.window)})", file=sys.stderr, flush=True)
    reader = config.pubsub.reader if config.pubsub else "client"
    loop = local_runner.local_loop(pipeline_options, config.source, reader)
    stop_after = config.stream.stop_after
    if loop == "okta" and config.okta.orgs_file:
        return run_loop(lambda: okta_tail.run_orgs_locally(config.okta.orgs, config.tail, stop_after), config)
    if loop == "okta":
        return run_loop(lambda: okta_tail.run_locally(config.okta.org, config.tail, stop_after), config)
    if loop == "pubsub":
        if config.pubsub.id_label:
            print("note: --id_label is used by Dataflow's ReadFromPubSub; the local loop dedupes on the events' "
                  "uuid", file=sys.stderr, flush=True)
        return run_loop(lambda: pubsub_loop.run_locally(config.pubsub_loop, stop_after), config)
    pipeline = beam.Pipeline(options=pipeline_options)
    build(pipeline, config)
    if not config.local:
        from pipeline.batch import submit

        return submit(pipeline, config)
    error = local_runner.run_streaming_graph(pipeline, stop_after, hide_tracebacks=not config.verbose)
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
    return (f"stopped {config.run_id}: every window committed so far is in {config.lake.root}; rows of the "
            "open window are read again by the next run")


def run_loop(loop, config: RunConfig) -> int:
    """Run a local loop until it stops, then print the run's summary: the same counts as its window lines,
    its Prometheus endpoint and its Beam counters, balanced (what the open window held is ``withheld``: the
    next run reads it again), and the schema drift of its committed windows."""
    before = process_totals()
    take_drift_totals()  # what this process saw before the loop is not the loop's
    try:
        loop()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise RunFailed(failure(exc), committed(config), streaming=True) from exc
    after = process_totals()
    counts = committed_dead_letters({name: after[name] - before.get(name, 0) for name in after})
    seconds = (_dt.datetime.now(_dt.timezone.utc) - config.started).total_seconds()
    summary = RunSummary(config.run_id, config.lake.root, counts, seconds=seconds,
                         drift=drift_reports.sorted_report(take_drift_totals()))
    print(summary.render(), flush=True)
    for name, quantiles in freshness_totals().items():
        print(f"  {FRESHNESS_LABELS[name]:<24}{quantiles.describe()}", flush=True)
    print(stopped(config), file=sys.stderr, flush=True)
    if not summary.balanced:
        print("error: the run's counts do not balance (see above); please report this", file=sys.stderr)
        return 1
    return 0
