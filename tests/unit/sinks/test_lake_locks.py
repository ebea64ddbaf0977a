"""Partition commit leases on local disk: one holder at a time, released or stale ones taken over, a lost one
stops its holder (the same code on gs:// and s3://: tests/integration/storage/test_concurrent_lakes.py)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from schemas.arrow import file_schema
from sinks.lake import locks
from sinks.lake.commit import commit_partition
from sinks.lake.locks import LeaseLost, LeaseTiming, LeaseWaitTimeout, PartitionLease, lock_folder
from sinks.lake.stage import PartitionStager
from tests.support.flatten import table_of
from transforms.records import PartitionKey

PARTITION = "event_date=2026-03-01/event_type=personal.user.session.start"
SHORT = LeaseTiming(stale_after=1.0, wait_at_most=5.0)


def numbers(lake) -> list[int]:
    return [number for number, _, _ in locks.leases(lock_folder(str(lake), PARTITION))]


def load(path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def free(path, default_stale_after: float) -> bool:
    return locks.is_free(os.path.dirname(path), load(path), os.stat(path).st_mtime, default_stale_after)


def plant(lake, number: int, age: float, stale_after: float = 1.0, released: bool = False, mtime_age=None) -> str:
    """A lease written ``age`` s ago by its own clock (and ``mtime_age`` s ago by the store's), never renewed."""
    folder = lock_folder(str(lake), PARTITION)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{number:012d}.lease")
    with open(path, "w") as handle:
        json.dump({"owner": "other", "renewed_at": time.time() - age, "stale_after": stale_after,
                   "released": released}, handle)
    then = time.time() - (age if mtime_age is None else mtime_age)
    os.utime(path, (then, then))
    return path


def test_a_second_commit_waits_for_the_first_then_takes_the_next_number(tmp_path):
    first = PartitionLease(str(tmp_path), PARTITION, "run-1", SHORT).acquire()
    assert numbers(tmp_path) == [1]
    got = []
    waiter = threading.Thread(target=lambda: got.append(PartitionLease(str(tmp_path), PARTITION, "run-2",
                                                                       SHORT).acquire()))
    waiter.start()
    time.sleep(0.3)
    assert not got and waiter.is_alive()  # held, renewed: not taken
    first.check()
    first.release()
    waiter.join(timeout=10)
    [second] = got
    assert second.number == 2 and numbers(tmp_path) == [2]  # the released lower lease is gone
    second.release()
    record = load(second.path)
    assert record["released"] is True and record["owner"] == "run-2" and record["stale_after"] == 1.0


def test_a_live_lease_keeps_others_out_until_they_give_up(tmp_path):
    holder = PartitionLease(str(tmp_path), PARTITION, "run-1", LeaseTiming(stale_after=0.6)).acquire()
    try:
        # Waiting more than twice the stale time: only the holder's renewals keep the lease.
        with pytest.raises(LeaseWaitTimeout, match="other commits kept it"):
            PartitionLease(str(tmp_path), PARTITION, "run-2", LeaseTiming(0.6, wait_at_most=1.5)).acquire()
        holder.check()
    finally:
        holder.release()


def test_a_stale_lease_is_taken_over_and_its_holder_then_publishes_nothing(tmp_path):
    holder = PartitionLease(str(tmp_path), PARTITION, "run-1", LeaseTiming(stale_after=60.0)).acquire()
    holder._stop.set()  # noqa: SLF001 - as if the holder froze: no more renewals
    holder._thread.join()  # noqa: SLF001
    path = holder.path
    record = load(path)
    with open(path, "w") as handle:
        json.dump({**record, "renewed_at": time.time() - 120}, handle)
    os.utime(path, (time.time() - 120, time.time() - 120))
    taker = PartitionLease(str(tmp_path), PARTITION, "run-2", SHORT).acquire()
    assert taker.number == 2
    with pytest.raises(LeaseLost, match="another commit took the partition over"):
        holder.check()
    holder.release()  # writes "released" on its own, lower lease: the taker still owns the partition
    taker.check()
    taker.release()


def test_a_lease_is_stale_only_by_both_clocks_and_by_its_own_stale_time(tmp_path):
    fresh_by_writer = plant(tmp_path, 1, age=0.0, mtime_age=30)
    assert not free(fresh_by_writer, 1.0)
    fresh_by_store = plant(tmp_path, 2, age=30, mtime_age=0.0)
    assert not free(fresh_by_store, 1.0)
    old = plant(tmp_path, 3, age=30, stale_after=60)  # 30 s old, but its holder promised renewals within 60 s
    assert not free(old, 1.0)
    dead = plant(tmp_path, 4, age=30, stale_after=10)
    assert free(dead, 120.0)
    released = plant(tmp_path, 5, age=0.0, released=True)
    assert free(released, 120.0)


def test_a_killed_holder_blocks_the_partition_for_its_stale_time_only(tmp_path):
    plant(tmp_path, 7, age=0.0, stale_after=1.0)  # just written, then its process died
    # The taker's own stale time (120 s) is longer than it may wait (30 s): it honours the lease's 1 s.
    taker = PartitionLease(str(tmp_path), PARTITION, "run-2", LeaseTiming(120.0, wait_at_most=30)).acquire()
    taker.release()
    assert taker.number == 8 and numbers(tmp_path) == [8]


def test_on_local_disk_a_lease_whose_process_is_gone_is_free_at_once(tmp_path):
    with open("/proc/sys/kernel/pid_max") as handle:
        unused = next(pid for pid in range(int(handle.read()) - 1, 1, -1) if not os.path.exists(f"/proc/{pid}"))
    me = locks.process_identity()
    path = plant(tmp_path, 3, age=0.0, stale_after=120.0)
    record = load(path)
    for process, gone in [({**me, "pid": unused}, True),  # no such process
                          ({**me, "started": "1"}, True),  # this pid, but another process's start time
                          (me, False),  # alive
                          ({**me, "pid": unused, "boot_id": "another-machine"}, False),
                          (None, False)]:  # a lease written without /proc
        with open(path, "w") as handle:
            json.dump({**record, "process": process}, handle)
        assert free(path, 120.0) is gone, process
    with open(path, "w") as handle:
        json.dump({**record, "process": {**me, "pid": unused}}, handle)
    taker = PartitionLease(str(tmp_path), PARTITION, "run-2", LeaseTiming(120.0, wait_at_most=30)).acquire()
    taker.release()
    assert taker.number == 4


def test_a_holder_whose_renewals_stopped_stops_itself(tmp_path):
    holder = PartitionLease(str(tmp_path), PARTITION, "run-1", LeaseTiming(stale_after=0.6)).acquire()
    holder._stop.set()  # noqa: SLF001 - no more renewals, as in a process frozen for a while
    holder._thread.join()  # noqa: SLF001
    time.sleep(0.4)
    with pytest.raises(LeaseLost, match="older than half the stale time"):
        holder.check()
    holder.release()


def test_commits_of_one_partition_from_many_threads_keep_each_uuid_once(tmp_path):
    lake = str(tmp_path / "lake")
    key = PartitionKey("2026-03-01", "personal.user.session.start")
    staged = []
    for writer in range(6):
        stager = PartitionStager(str(tmp_path / "lake" / "_staging" / f"run{writer}"), file_schema(),
                                 writer_thread=False)
        stager.add(key, table_of([f"e{n}" for n in range(writer * 20, writer * 20 + 60)]))
        staged.append(stager.close())
    results = [None] * len(staged)

    def commit(writer):
        results[writer] = commit_partition(lake, key, staged[writer], f"run{writer}", lease=SHORT)

    threads = [threading.Thread(target=commit, args=(w,)) for w in range(len(staged))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    import pyarrow.dataset as ds

    uuids = ds.dataset(os.path.join(lake, key.path()), format="parquet").to_table(columns=["uuid"]).column("uuid")
    assert sorted(uuids.to_pylist()) == sorted(f"e{n}" for n in range(160))
    assert sum(r.events for r in results) == 160
    assert sum(r.duplicates_in_lake for r in results) == 6 * 60 - 160
