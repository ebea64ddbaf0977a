"""Each Beam 2.77 local-runner workaround (pipeline/runner.py) still matches what Beam does.

When a Beam upgrade changes one of these behaviours, the matching test fails: re-measure, then update or
remove the workaround (docs/beam-2.77.md).
"""

from __future__ import annotations

import io

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from okta_client.errors import UnsafeUrl
from pipeline import runner as local_runner
from streaming.beam import stamp_arrival


def test_every_workaround_was_measured_on_this_beam_version():
    # PeriodicImpulse's growth (3), ReadFromPubSub's early acks (4), the watermark that made a backlog late (5)
    # and the runner that cannot stop (8) were measured, not derived: an upgrade means measuring again.
    assert beam.__version__ == local_runner.BEAM_VERSION


def test_beams_default_runner_is_the_direct_runner_that_may_download_prism():
    # Workaround 1: with no --runner Beam picks DirectRunner, which hands supported graphs to Prism (downloaded).
    from apache_beam.runners.direct import direct_runner

    assert StandardOptions.DEFAULT_RUNNER == "DirectRunner"
    import inspect

    assert "PrismRunner" in inspect.getsource(direct_runner.SwitchingDirectRunner.run_pipeline)


def test_the_fnapi_runner_is_chosen_for_batch_and_the_direct_runner_for_streaming():
    batch = PipelineOptions([])
    local_runner.choose_runner(batch, [], streaming=False, source="file")
    assert batch.view_as(StandardOptions).runner == "FnApiRunner"
    stream = PipelineOptions([])
    local_runner.choose_runner(stream, [], streaming=True, source="okta")
    assert stream.view_as(StandardOptions).runner == "DirectRunner"
    given = PipelineOptions(["--runner=DataflowRunner"])
    local_runner.choose_runner(given, ["--runner=DataflowRunner"], streaming=False, source="okta")
    assert given.view_as(StandardOptions).runner == "DataflowRunner"


def test_okta_runs_get_threads_unless_the_worker_count_was_given():
    # Workaround 2: Beam's defaults (one worker, in memory) cannot be told apart from a value the user passed.
    defaults = PipelineOptions([]).view_as(DirectOptions)
    assert (defaults.direct_num_workers, defaults.direct_running_mode) == (1, "in_memory")
    options = PipelineOptions([])
    local_runner.choose_runner(options, [], streaming=False, source="okta")
    direct = options.view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (4, "multi_threading")
    argv = ["--direct_num_workers=1"]
    options = PipelineOptions(argv)
    local_runner.choose_runner(options, argv, streaming=False, source="okta")
    assert options.view_as(DirectOptions).direct_num_workers == 1


@pytest.mark.parametrize("runner, source, reader, loop", [
    (None, "okta", "client", "okta"), ("DirectRunner", "pubsub", "client", "pubsub"),
    ("DirectRunner", "pubsub", "beam", None), ("DataflowRunner", "okta", "client", None),
    ("DataflowRunner", "pubsub", "client", None),
])
def test_local_streams_run_as_plain_loops(runner, source, reader, loop):
    # Workarounds 3 and 4.
    options = PipelineOptions([f"--runner={runner}"] if runner else [])
    assert local_runner.local_loop(options, source, reader) == loop


def test_arrival_stamps_are_now():
    # Workaround 5.
    import time

    before = time.time()
    stamped = stamp_arrival("x")
    assert stamped.value == "x" and before <= float(stamped.timestamp) <= time.time()


def test_worker_tracebacks_are_hidden_and_other_text_is_not(monkeypatch):
    # Workaround 6.
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    with local_runner.beam_tracebacks_hidden():
        import sys

        sys.stderr.write("Traceback (most recent call last):\n  File \"apache_beam/runners/worker.py\"\n")
        sys.stderr.write("a line of ours\n")
    assert out.getvalue() == "a line of ours\n"


def _refuse(_):
    raise UnsafeUrl("refusing the next link https://evil.example.com/api/v1/logs: another origin")


def test_a_multi_threaded_worker_error_arrives_as_text_and_is_recovered():
    # Workaround 7: in multi_threading mode Beam 2.77 loses the exception object and keeps its traceback text.
    options = PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=multi_threading",
                               "--direct_num_workers=2"])
    with pytest.raises(Exception) as caught, beam.Pipeline(options=options) as pipeline:
        pipeline | beam.Create([1]) | beam.Map(_refuse)
    assert type(caught.value) is RuntimeError and not isinstance(caught.value.__cause__, UnsafeUrl)
    assert local_runner.worker_error(caught.value, (UnsafeUrl,)) == (
        UnsafeUrl, "refusing the next link https://evil.example.com/api/v1/logs: another origin")


def test_the_local_streaming_result_cannot_be_stopped_cleanly():
    # Workaround 8: Beam 2.77's own word on the BundleBasedDirectRunner's cancel: for tests, and it does not wait
    # for the worker threads, hence the daemon thread and os._exit.
    import inspect

    from apache_beam.runners.direct.direct_runner import DirectPipelineResult

    doc = " ".join(inspect.getdoc(DirectPipelineResult.cancel).split())
    assert "For testing use only" in doc and "Does not properly wait for pipeline workers to shut down" in doc
