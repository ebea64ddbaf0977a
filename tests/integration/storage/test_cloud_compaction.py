"""A stream's lake compaction on gs:// and s3:// (fake-gcs-server, moto's S3 server): window files folded into one
file per partition with every row once, and a compaction killed with SIGKILL right after it published its new file
finished by the next one."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from collections import Counter

from sinks.lake import compaction, compactor, locks
from sinks.lake.compaction_plan import Rules
from storage import fs
from streaming.window_buffer import WindowBuffer
from tests.support.helpers import use_in_this_process, window_settings
from tests.support.okta import make_events, personal
from tests.support.stores import stored_row_keys
from transforms.records import RawBatch

START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
WINDOW = 600.0
RULES = Rules(settle=300.0, fold_at=4)


def commit(settings, at: float, salt: int) -> list[dict]:
    events = make_events(3, dt.datetime.fromtimestamp(at, dt.timezone.utc), dt.timedelta(seconds=1), salt=salt)
    buffer = WindowBuffer(settings, clock=lambda: at)
    buffer.open(at)
    buffer.take(RawBatch("page", "page", [1], [json.dumps(events).encode()]))
    buffer.commit("okta")
    return personal(events)


def lake_files(lake: str) -> Counter:
    return Counter(p[len(lake) + 1:].rsplit("/", 1)[0]
                   for p in fs.list_files(fs.join(lake, "event_date=*", "event_type=*", "*.parquet")))


def test_window_files_in_a_bucket_fold_into_one_and_a_kill_after_publish_is_finished(cloud, monkeypatch):
    base, extra = cloud
    use_in_this_process(extra)
    lake = f"{base}/compact-{os.getpid()}-{dt.datetime.now():%H%M%S%f}"
    monkeypatch.setattr(compactor, "_COMPACTORS", {})
    compactor._COMPACTORS[lake] = compactor.LakeCompactor(lake, "job1", clock=lambda: START, rules=RULES,
                                                          every=10**9)  # no pass while the windows commit
    settings = window_settings(lake)
    expected = set()
    for n in range(4):
        expected |= {e["uuid"] for e in commit(settings, START + n * WINDOW, salt=n)}
    partitions = lake_files(lake)
    assert partitions and all(n == 4 for n in partitions.values())
    killed, rest = sorted(partitions)[0], sorted(partitions)[1:]
    now = START + 2 * 3600
    # Leases declare when they go stale: the killed child's (on a bucket no one can tell its holder died) in 1 s.
    monkeypatch.setattr(locks, "STALE_AFTER_SECONDS", 1.0)

    pid = os.fork()
    if pid == 0:  # a compaction that dies right after publishing its new file, before deleting the old ones
        original = compaction.publish

        def then_die(*args, **kwargs):
            original(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        compaction.publish = then_die
        try:
            compaction.compact_partition(lake, killed, now, RULES)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert {uuid for uuid, _ in stored_row_keys(lake)} == expected  # rows seen twice meanwhile, none missing

    finished = compaction.compact_partition(lake, killed, now + 1, RULES,
                                            timing=locks.LeaseTiming(stale_after=1.0, wait_at_most=60))
    assert finished.recovered == 1 and not finished.busy
    for partition in rest:
        assert compaction.compact_partition(lake, partition, now, RULES).groups == 1
    keys = stored_row_keys(lake)
    assert set(keys.values()) == {1} and {uuid for uuid, _ in keys} == expected
    assert all(n == 1 for n in lake_files(lake).values())
    assert not fs.list_files(fs.join(lake, compaction.JOURNAL_DIR, "**"))
