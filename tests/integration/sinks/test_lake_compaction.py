"""The Hive lake's streaming files compacted while a tail runs: a simulated day of windows (a clock the test
controls, no waiting), kill -9 at every step of a compaction, a commit racing a compaction.

Each window goes through the real streaming path (:class:`streaming.window_buffer.WindowBuffer`, whose commit
calls the compaction hook of :mod:`streaming.commit`), with this process's compactor made on a simulated clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from sinks.lake import compaction, compactor, locks
from sinks.lake.compaction_plan import Rules, bound
from streaming.window_buffer import WindowBuffer
from tests.support.helpers import read_lake, window_settings
from tests.support.okta import make_events, personal
from transforms.records import RawBatch

START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
WINDOW = 600.0
RULES = Rules(settle=300.0, fold_at=4)  # an open hour folds its window files 4 at a time


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setattr(compactor, "_COMPACTORS", {})
    return Clock(START)


def use_compactor(lake: Path, clock: Clock, every: float = WINDOW) -> compactor.LakeCompactor:
    made = compactor.LakeCompactor(str(lake), "job1", clock=clock, rules=RULES, every=every)
    compactor._COMPACTORS[str(lake)] = made
    return made


def commit(settings, at: float, count: int, salt: int):
    events = make_events(count, dt.datetime.fromtimestamp(at, dt.timezone.utc), dt.timedelta(seconds=1), salt=salt)
    buffer = WindowBuffer(settings, clock=lambda: at)
    buffer.open(at)
    buffer.take(RawBatch("page", "page", [1], [json.dumps(events).encode()]))
    buffer.commit("poll", "okta")
    return personal(events)


def files(lake: Path) -> Counter:
    return Counter(str(p.parent.relative_to(lake)) for p in lake.glob("event_date=*/event_type=*/*.parquet"))


def readme_query(lake: Path) -> tuple[int, int]:
    """The README's DuckDB query, summed: (rows, distinct uuids)."""
    found = duckdb.sql(f"""SELECT event_type, event_date, count(*) AS rows, count(DISTINCT uuid) AS events
        FROM read_parquet('{lake}/event_date=*/event_type=*/*.parquet', hive_partitioning=true)
        GROUP BY ALL ORDER BY ALL""").fetchall()
    return sum(r[2] for r in found), sum(r[3] for r in found)


def test_a_day_of_windows_leaves_few_files_per_partition_and_every_row_once(tmp_path, clock):
    lake = tmp_path / "lake"
    settings = window_settings(lake)
    use_compactor(lake, clock)
    expected: set = set()
    most = 0
    windows = int(26 * 3600 // WINDOW)  # a day and two hours: the first day closes and is folded
    for n in range(windows):
        clock.now = START + n * WINDOW
        expected |= {e["uuid"] for e in commit(settings, clock.now, 2, salt=n)}
        most = max(most, max(files(lake).values()))
    clock.now += 3600
    compactor._COMPACTORS[str(lake)].run(force=True)

    limit = bound(RULES, WINDOW, WINDOW)
    assert most <= limit, (most, limit)  # at every moment of the day
    per_partition = files(lake)
    first_day = {p: n for p, n in per_partition.items() if p.startswith("event_date=2025-12-01")}
    assert first_day and all(n == 1 for n in first_day.values()), per_partition  # a closed day: one file
    assert all(n <= 3 for n in per_partition.values()), per_partition  # the next day: its two closed hours
    rows = read_lake(lake)
    assert len(rows) == len({(r["uuid"], r["target_index"]) for r in rows})
    assert {r["uuid"] for r in rows} == expected
    assert readme_query(lake) == (len(rows), len(expected))
    assert not list((lake / compaction.JOURNAL_DIR).rglob("*.json"))


# --- kill -9 at every step of one compaction ---------------------------------------------------------------

STEPS = ["write_journal", "publish", "remove_inputs", "close_journal"]  # each right after it ran


def killed_at(step: str, lake: Path, partition: str, now: float) -> None:
    """Compact the partition in a forked child that kills itself with SIGKILL right after ``step`` (its first
    call), holding the partition's lease."""
    pid = os.fork()
    if pid == 0:  # the child
        original = getattr(compaction, step)

        def then_die(*args, **kwargs):
            original(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        setattr(compaction, step, then_die)
        try:
            compaction.compact_partition(str(lake), partition, now, RULES)
        finally:
            os._exit(3)  # not killed: the step never ran
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


@pytest.mark.parametrize("step", STEPS)
def test_a_compaction_killed_at_any_step_is_finished_by_the_next_with_every_row_once(tmp_path, clock, step,
                                                                                      monkeypatch):
    lake = tmp_path / "lake"
    settings = window_settings(lake)
    use_compactor(lake, clock, every=10**9)  # no pass while the windows are committed
    expected: set = set()
    for n in range(6):
        expected |= {e["uuid"] for e in commit(settings, START + n * WINDOW, 4, salt=n)}
    partition = sorted(files(lake))[0]
    before = files(lake)[partition]
    now = START + 2 * 3600
    killed_at(step, lake, partition, now)

    # Between the kill and the next compaction a reader may see rows twice, never misses one.
    assert {r["uuid"] for r in read_lake(lake)} == expected
    monkeypatch.setattr(locks, "STALE_AFTER_SECONDS", 0.5)  # the killed child's lease goes stale at once
    done = compaction.compact_partition(str(lake), partition, now + 1, RULES)
    assert done.recovered == (0 if step == "close_journal" else 1) and not done.busy
    rows = read_lake(lake)
    assert len(rows) == len({(r["uuid"], r["target_index"]) for r in rows})
    assert {r["uuid"] for r in rows} == expected
    assert files(lake)[partition] == 1 < before
    assert not list((lake / compaction.JOURNAL_DIR).rglob("*.json"))


def test_a_window_committed_while_its_partition_is_compacted_waits_and_adds_only_new_events(tmp_path, clock):
    lake = tmp_path / "lake"
    settings = window_settings(lake)
    use_compactor(lake, clock, every=10**9)
    first = commit(settings, START, 4, salt=0) + commit(settings, START + WINDOW, 4, salt=1)
    partition = sorted(files(lake))[0]
    timing = locks.LeaseTiming(stale_after=60, wait_at_most=60)
    seen = []
    original = compaction.publish

    def publish_then_commit(staged, final, lease):
        original(staged, final, lease)
        if not seen:  # mid-compaction: a replayed window and a new one, from another thread
            worker = threading.Thread(target=lambda: seen.append(
                commit(settings, START + 2 * WINDOW, 4, salt=0) + commit(settings, START + 3 * WINDOW, 4, salt=2)))
            worker.start()
            worker.join(1.0)
            assert worker.is_alive()  # held back by the compaction's lease
            seen.append(worker)

    compaction.publish = publish_then_commit
    try:
        done = compaction.compact_partition(str(lake), partition, START + 2 * 3600, RULES, timing=timing)
    finally:
        compaction.publish = original
    seen[0].join(60)
    assert done.groups == 1
    rows = read_lake(lake)
    assert len(rows) == len({(r["uuid"], r["target_index"]) for r in rows})
    assert {e["uuid"] for e in first + seen[1]} == {r["uuid"] for r in rows}  # the new window's events added


def test_a_background_compactor_makes_its_pass_in_its_own_thread_and_reports_it(tmp_path, clock):
    lake = tmp_path / "lake"
    settings = window_settings(lake)
    use_compactor(lake, clock, every=10**9)
    expected = set()
    for n in range(3):
        expected |= {e["uuid"] for e in commit(settings, START + n * WINDOW, 4, salt=n)}
    clock.now = START + 2 * 3600
    background = compactor.LakeCompactor(str(lake), "job1", clock=clock, rules=RULES, background=True)
    reports = []
    background.after_window(set(files(lake)), done=lambda report: reports.append((report, threading.current_thread())))
    background.wait(60)
    [(report, thread)] = reports
    assert thread is not threading.main_thread() and report.groups == len(files(lake)) and report.files_read == 6
    assert all(n == 1 for n in files(lake).values()) and {r["uuid"] for r in read_lake(lake)} == expected


def test_a_window_noting_its_partitions_does_not_wait_for_a_pass_and_stays_known(tmp_path, clock, monkeypatch):
    lake = tmp_path / "lake"
    compacting, release = threading.Event(), threading.Event()

    def slow_compaction(lake_root, partition, now, rules, **options):  # a pass that takes its time
        compacting.set()
        release.wait(60)
        return compaction.PartitionReport(partition)

    monkeypatch.setattr(compactor, "compact_partition", slow_compaction)
    background = compactor.LakeCompactor(str(lake), "job1", clock=clock, rules=RULES, background=True)
    background.after_window({"event_date=2025-12-01/event_type=personal.a"})
    assert compacting.wait(60)
    noting = threading.Thread(target=background.note, args=({"event_date=2025-12-01/event_type=personal.a",
                                                              "event_date=2025-12-01/event_type=personal.b"},))
    noting.start()
    noting.join(10)
    still_waiting = noting.is_alive()
    release.set()
    background.wait(60)
    assert not still_waiting  # the window's thread went on while the pass ran
    # written to during the pass: looked at again by the next one, though this pass found nothing to wait for
    assert background.known == ["event_date=2025-12-01/event_type=personal.b",
                                "event_date=2025-12-01/event_type=personal.a"]
