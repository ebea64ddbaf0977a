"""Every workaround for Apache Beam 2.77's local runners, in one place (docs/beam-2.77.md has the measurements).

Each entry says what Beam 2.77 does and what we do instead;
tests/unit/pipeline/test_local_runner.py checks the Beam version and behaviour each
one depends on, so a Beam upgrade that makes one unnecessary or wrong fails
a test rather than going unnoticed.

1. Default runner. With no ``--runner``, Beam 2.77 picks the Prism runner,
   which it first downloads: offline that fails after a delay. Batch runs
   get the in-process ``FnApiRunner`` instead (:func:`choose_runner`);
   streaming runs get ``DirectRunner`` (the BundleBasedDirectRunner, offline too).
2. Worker count. The ``FnApiRunner`` runs one bundle at a time by default;
   API reads wait on the network, so an Okta batch run gets 4 threads,
   unless ``--direct_num_workers`` was given: Beam cannot tell a default
   from a value the user passed, so we look for the flag in argv.
3. ``PeriodicImpulse`` locally grows the process ~7.5 MB/s on the
   streaming DirectRunner and fires nothing until its stop time on the
   FnApiRunner: the Okta tail runs as a plain loop (:mod:`streaming.okta_tail`)
   on a local runner (:func:`local_loop`).
4. ``ReadFromPubSub`` on the local runner acknowledges every message as
   soon as it is pulled (a stopped process loses its open window), pulls 10
   messages per bundle and grows ~1 MB/min: ``--pubsub_reader=client``
   (the default) runs :mod:`streaming.pubsub_loop` instead (:func:`local_loop`).
5. Arrival-time restamping. The local runner moves the Pub/Sub watermark to
   the newest message pulled, so a backlog pulled in several batches was
   "late" and dropped without a trace: :func:`streaming.beam.stamp_arrival` re-stamps
   every element with its arrival time before windowing (streaming.beam).
6. Worker tracebacks. The portable runner's SDK worker prints a failing
   bundle's whole traceback straight to ``sys.stderr`` (not through
   ``logging``), once per retry: :func:`beam_tracebacks_hidden` drops them
   (the run's failure is reported as one line; ``--verbose`` shows all).
7. Worker errors as text. In ``multi_threading`` mode the FnApiRunner hands
   back a worker's exception as a ``RuntimeError`` holding the worker's
   traceback text; the exception object is lost. :func:`worker_error`
   recovers its class and message for every project error class (any
   :class:`~common.errors.LakeError` subclass imported here; the graph imported
   the modules that raise them) and for the standard classes asked for, by the
   qualified class name the traceback's lines start with.
8. No way to stop. The local streaming runner has no prompt way to stop its
   worker threads (its ``cancel`` is "for testing use only" and does not
   wait for them; ``wait_until_finish`` of a stream never returns):
   :func:`run_streaming_graph` runs the graph in a daemon thread until
   ``--stop_after`` or Ctrl-C, and :func:`exit_now` ends the process with ``os._exit`` once the last line is printed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from common.errors import error_classes

BEAM_VERSION = "2.77.0"  # the version every workaround below was measured on
LOCAL_RUNNERS = {"fnapirunner", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner",
                 "prismrunner"}
OKTA_LOCAL_WORKERS = 4


def is_local(pipeline_options: PipelineOptions) -> bool:
    """Whether the pipeline runs in this process (any local runner, or none given)."""
    runner = pipeline_options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner else "fnapirunner"
    return name.lower() in LOCAL_RUNNERS or name.lower() + "runner" in LOCAL_RUNNERS


def on_dataflow(pipeline_options: PipelineOptions) -> bool:
    """Whether the pipeline is for Google Cloud Dataflow (its workers are other machines)."""
    runner = pipeline_options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner else ""
    return "dataflow" in name.lower()


def choose_runner(pipeline_options: PipelineOptions, argv: list[str], *, streaming: bool, source: str) -> None:
    """Workarounds 1 and 2: the runner (and worker threads) when ``--runner`` was not given."""
    standard = pipeline_options.view_as(StandardOptions)
    if standard.runner is not None:
        return
    if streaming:
        standard.runner = "DirectRunner"
        return
    standard.runner = "FnApiRunner"
    if source == "okta" and not any(a.split("=", 1)[0] == "--direct_num_workers" for a in argv):
        direct = pipeline_options.view_as(DirectOptions)
        direct.direct_running_mode = "multi_threading"
        direct.direct_num_workers = OKTA_LOCAL_WORKERS


def local_loop(pipeline_options: PipelineOptions, source: str, pubsub_reader: str) -> str | None:
    """Workarounds 3 and 4: ``"okta"`` or ``"pubsub"`` when the stream runs as a plain loop here, else None."""
    if not is_local(pipeline_options):
        return None
    if source == "okta":
        return "okta"
    if source == "pubsub" and pubsub_reader == "client":
        return "pubsub"
    return None


class _DropWorkerTracebacks:
    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Traceback (most recent call last)") and "apache_beam/runners" in text:
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def beam_tracebacks_hidden(enabled: bool = True):
    """Workaround 6: keep the SDK worker's tracebacks off the terminal while the pipeline runs."""
    if not enabled:
        yield
        return
    original = sys.stderr
    sys.stderr = _DropWorkerTracebacks(original)
    try:
        yield
    finally:
        sys.stderr = original


def worker_error(exc: BaseException, standard: tuple[type, ...] = ()) -> tuple[type, str] | None:
    """Workaround 7: (class, message) of a worker's project error (or one of ``standard``), from the text Beam kept."""
    if not isinstance(exc, RuntimeError):
        return None
    # A traceback names a class by module and name, a built-in one (or one of __main__) by its name alone.
    names = {cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}":
             cls for cls in (*error_classes(), *standard)}
    for line in reversed(str(exc).splitlines()):
        name, sep, message = line.partition(": ")
        if sep and name in names:
            return names[name], message.split(" [while running")[0]
    return None


def run_streaming_graph(pipeline, stop_after: float | None, hide_tracebacks: bool = True) -> BaseException | None:
    """Workaround 8: run a local streaming graph until it fails, ``stop_after`` seconds pass, or Ctrl-C."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with beam_tracebacks_hidden(hide_tracebacks):
                pipeline.run().wait_until_finish()
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)

    runner = threading.Thread(target=run, name="pipeline", daemon=True)
    runner.start()
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while runner.is_alive() and (deadline is None or time.monotonic() < deadline):
            runner.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    return failure[0] if failure else None


def exit_now(code: int) -> None:
    """Workaround 8: end the process now; the local streaming runner's threads would keep it alive."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
