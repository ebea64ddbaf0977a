"""Streaming building blocks without a runner: the uuid horizon, window names, option checks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sinks.lake.window import window_id, window_start
from sources.pubsub.messages import parse_subscription
from tests.support.helpers import run_pipeline
from transforms.dedupe import RecentUuids


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def rows(*uuids):
    return pa.table({"uuid": list(uuids), "target_index": list(range(len(uuids)))})


def test_recent_uuids_drop_repeats_within_the_horizon_and_forget_after_it():
    clock = Clock()
    recent = RecentUuids(60, clock=clock)
    kept, dropped = recent.keep_new(rows("a", "a", "b"))  # two targets of "a": both rows stay
    assert kept.column("uuid").to_pylist() == ["a", "a", "b"] and dropped == 0
    clock.now += 30
    kept, dropped = recent.keep_new(rows("a", "c"))
    assert kept.column("uuid").to_pylist() == ["c"] and dropped == 1
    clock.now += 45  # "a" and "b" are 75 s old, "c" 45 s
    kept, dropped = recent.keep_new(rows("a", "c"))
    assert kept.column("uuid").to_pylist() == ["a"] and dropped == 1
    assert len(recent) == 2  # memory is bounded by the horizon: "b" is gone


def test_window_names_sort_and_say_when():
    assert window_id(window_start(1795650301.7, 300)) == "w20261125T234500Z"
    assert window_id(window_start(1795650299.0, 300)) < window_id(window_start(1795650301.0, 300))


def test_subscription_paths():
    assert parse_subscription("projects/p-1/subscriptions/okta") == ("p-1", "okta")
    for bad in ("okta", "projects/p/topics/t", "projects//subscriptions/s", ""):
        assert parse_subscription(bad) is None


@pytest.mark.parametrize("args, message", [
    (["--source=pubsub", "--subscription=projects/p/subscriptions/s"], "--source=pubsub needs --streaming"),
    (["--streaming", "--source=pubsub"], "--subscription is required"),
    (["--streaming", "--source=pubsub", "--subscription=okta"], "not 'okta'"),
    (["--streaming", "--source=file", "--input=x.jsonl"], "--streaming needs --source=okta"),
    (["--streaming", "--source=okta", "--okta_org_url=https://acme.okta.com"], "needs --state"),
    (["--streaming", "--source=okta", "--okta_org_url=https://acme.okta.com", "--state=/tmp/c.json",
      "--since=2026-11-20T00:00:00Z"], "--since/--until are for backfills"),
    (["--streaming", "--source=pubsub", "--subscription=projects/p/subscriptions/s", "--window=0s"], "--window"),
    (["--streaming", "--source=pubsub", "--subscription=projects/p/subscriptions/s", "--window=1h",
      "--dedupe_horizon=10m"], "at least one --window"),
])
def test_bad_streaming_options_are_refused_up_front(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("OKTA_API_TOKEN", "x")
    run = run_pipeline(f"--output={tmp_path}", *args)
    assert run.code == 2 and message in run.stderr, run.stderr


def test_recent_uuids_report_when_the_oldest_entry_expires():
    clock = Clock()
    recent = RecentUuids(60, clock=clock)
    assert recent.forget_expired() is None
    recent.keep_new(rows("a"))
    clock.now += 10
    recent.keep_new(rows("b"))
    assert recent.forget_expired() == clock.now - 10 + 60
    clock.now += 55  # "a" is 65 s old, "b" 55 s
    assert recent.forget_expired() == clock.now - 55 + 60 and len(recent) == 1
    clock.now += 10
    assert recent.forget_expired() is None and len(recent) == 0


def test_beam_dedupe_keeps_the_first_copy_of_each_uuid_with_all_its_rows():
    import apache_beam as beam
    from apache_beam.metrics import MetricsFilter
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    from common.metrics import NAMESPACE
    from streaming.beam import DropRecentDuplicates
    from transforms.dedupe import split_by_uuid
    from transforms.records import PartitionKey, RowBatch

    partition = PartitionKey("2026-11-25", "personal.admin.configuration.update")
    split = list(split_by_uuid(RowBatch(partition, rows("a", "b", "a", "c"), 3)))
    assert [(uuid, batch.table.column("target_index").to_pylist(), batch.events) for uuid, batch in split] == [
        ("a", [0, 2], 1), ("b", [1], 1), ("c", [3], 1)]

    batches = [RowBatch(partition, rows("a", "a", "b"), 2), RowBatch(partition, rows("b"), 1),
               RowBatch(partition, rows("c", "a"), 2)]

    def check(kept):
        got = sorted((batch.table.column("uuid").to_pylist(), batch.events) for batch in kept)
        # One copy of each uuid, with all of that copy's rows (which copy of "a" wins depends on order).
        assert [uuids[0] for uuids, _ in got] == ["a", "b", "c"], got
        assert all(len(set(uuids)) == 1 and events == 1 for uuids, events in got), got
        assert len(got[1][0]) == 1 and len(got[2][0]) == 1, got

    pipeline = TestPipeline()
    assert_that(pipeline | beam.Create(batches) | DropRecentDuplicates(3600), check)
    result = pipeline.run()
    result.wait_until_finish()
    duplicates = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name("duplicates"))
    assert sum(c.committed for c in duplicates["counters"]) == 2  # the second "b" and one "a"
