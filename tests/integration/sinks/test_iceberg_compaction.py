"""The Iceberg table compacted by the stream itself: a simulated day and two hours of windows (a clock the test
controls; embedded SQLite catalog in tmp_path) leave few data files, few snapshots and few files on disk, and
the table's rows exact, without ``okta-personal-lake maintain``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from sinks.iceberg import compaction as iceberg_compaction
from sinks.iceberg import windows as iceberg_windows
from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.cleanup import TableJanitor
from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.windows import WindowCommitter
from sinks.lake import compactor as lake_compactor
from sinks.lake.compaction_plan import Rules
from streaming.window_buffer import WindowBuffer
from tests.support.helpers import window_settings
from tests.support.okta import make_events, personal
from transforms.records import RawBatch

START = 1_764_547_200.0  # 2025-12-01T00:00:00Z
WINDOW = 1800.0
KEEP = 6
RULES = Rules(settle=300.0, fold_at=2)


class Clock:
    now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stream(tmp_path, monkeypatch):
    """Window settings with ``--iceberg_table``, and this process's committer and compactors on one clock."""
    monkeypatch.setattr(iceberg_windows, "_COMMITTERS", {})
    monkeypatch.setattr(iceberg_compaction, "_COMPACTORS", {})
    monkeypatch.setattr(lake_compactor, "_COMPACTORS", {})
    clock = Clock()
    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))
    settings = window_settings(tmp_path / "lake", dedupe_horizon=0, iceberg=target, iceberg_keep_snapshots=KEEP)
    committer = WindowCommitter(target, keep_snapshots=KEEP, expire_every=2,
                                janitor=TableJanitor(clock=clock, grace=0.0))
    iceberg_windows._COMMITTERS[(target, KEEP)] = committer
    iceberg_compaction._COMPACTORS[id(committer)] = iceberg_compaction.TableCompactor(
        committer, "job1", clock=clock, rules=RULES, every=WINDOW)
    lake_compactor._COMPACTORS[settings.lake.root] = lake_compactor.LakeCompactor(
        settings.lake.root, "job1", clock=clock, rules=RULES, every=WINDOW)
    return settings, clock


def commit(settings, at: float, salt: int) -> list[dict]:
    events = make_events(4, dt.datetime.fromtimestamp(at, dt.timezone.utc), dt.timedelta(seconds=1), salt=salt)
    buffer = WindowBuffer(settings, clock=lambda: at)
    buffer.open(at)
    buffer.take(RawBatch("page", "page", [1], [json.dumps(events).encode()]))
    buffer.commit("poll", "okta")
    return personal(events)


def test_a_day_of_windows_leaves_a_bounded_table_with_every_row_once(stream):
    settings, clock = stream
    expected: set = set()
    windows = int(26 * 3600 // WINDOW)
    for n in range(windows):
        clock.now = START + n * WINDOW
        expected |= {e["uuid"] for e in commit(settings, clock.now, salt=n)}

    table = load_catalog(settings.iceberg).load_table("okta.events")
    tasks = list(table.scan().plan_files())
    per_partition = Counter(str(task.file.partition) for task in tasks)
    days = {task.file.partition[0] for task in tasks}
    first_day = {p: n for p, n in per_partition.items() if str(min(days)) in p.split(",")[0]}
    assert first_day and all(n == 1 for n in first_day.values()), per_partition  # the closed day: one file each
    assert all(n <= 3 for n in per_partition.values()), per_partition  # the open day: an hour file each, one open
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    keys = Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))
    assert max(keys.values()) == 1 and set(arrow.column("uuid").to_pylist()) == expected
    assert len(table.snapshots()) <= KEEP + 2
    summaries = [s.summary.additional_properties for s in table.snapshots()]
    assert any(s.get("okta-lake.operation") == "compact" for s in summaries)
    on_disk = list(Path(table.location().removeprefix("file://")).rglob("*.parquet"))
    # On disk: only the data files some kept snapshot holds (time travel), not every window's and compaction's.
    assert {str(p) for p in on_disk} == kept_data_files(table)
    assert len(on_disk) < 2 * windows  # each window wrote two (62 of 104+ here: the kept snapshots hold the rest)



def kept_data_files(table) -> set[str]:
    """The data files live in some snapshot the table keeps."""
    return {entry.data_file.file_path.removeprefix("file://") for snapshot in table.snapshots()
            for manifest in snapshot.manifests(table.io)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)}


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_compaction_killed_before_or_after_its_commit_leaves_every_row_once(stream, when):
    settings, clock = stream
    committer = iceberg_windows._COMMITTERS[(settings.iceberg, KEEP)]
    iceberg_compaction._COMPACTORS[id(committer)].every = 10**9  # no pass while the windows are committed
    lake_compactor._COMPACTORS[settings.lake.root].every = 10**9
    expected: set = set()
    for n in range(4):
        expected |= {e["uuid"] for e in commit(settings, START + n * 600, salt=n)}
    later = START + 3 * 3600
    pid = os.fork()
    if pid == 0:  # the child: its own catalog, killed with SIGKILL before or after the compaction's commit
        try:
            original = iceberg_compaction.commit_rewrites

            def killed(*args, **kwargs):
                if when == "after":
                    original(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)

            iceberg_compaction.commit_rewrites = killed
            mine = WindowCommitter(settings.iceberg, keep_snapshots=KEEP, expire_every=0)
            iceberg_compaction.TableCompactor(mine, "job1", clock=lambda: later, rules=RULES).run(force=True)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), status

    def table_state():
        table = load_catalog(settings.iceberg).load_table("okta.events")
        arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
        keys = Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))
        return keys, len(list(table.scan().plan_files()))

    keys, files = table_state()
    assert max(keys.values()) == 1 and {k[0] for k in keys} == expected
    assert files == (2 if when == "after" else 8)  # two partitions (event types), four windows
    again = iceberg_compaction.TableCompactor(WindowCommitter(settings.iceberg, keep_snapshots=KEEP), "job1",
                                              clock=lambda: later, rules=RULES).run(force=True)
    keys, files = table_state()
    assert max(keys.values()) == 1 and {k[0] for k in keys} == expected and files == 2
    assert (again.snapshot_id is None) == (when == "after")


def test_a_late_snapshot_step_whose_window_files_were_compacted_reads_the_partition_instead(tmp_path, monkeypatch):
    from sinks.iceberg.commit import commit_lake_files
    from sinks.lake.compaction import compact_partition

    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "warehouse"))
    settings = window_settings(tmp_path / "lake", dedupe_horizon=0)  # the lake only: the snapshot comes late
    monkeypatch.setattr(lake_compactor, "_COMPACTORS", {settings.lake.root: lake_compactor.LakeCompactor(
        settings.lake.root, "job1", clock=lambda: START, every=10**9)})
    expected, written = set(), []
    for n in range(3):
        buffer = WindowBuffer(settings, clock=lambda at=START + n * 600: at)
        buffer.open(START + n * 600)
        events = make_events(4, dt.datetime.fromtimestamp(START + n * 600, dt.timezone.utc),
                             dt.timedelta(seconds=1), salt=n)
        buffer.take(RawBatch("page", "page", [1], [json.dumps(events).encode()]))
        written += buffer.commit("poll", "okta").written
        expected |= {e["uuid"] for e in personal(events)}
    for partition in {p for p, _ in written}:
        assert compact_partition(settings.lake.root, partition, START + 3 * 3600, RULES).groups == 1

    commit_lake_files(load_catalog(target), target, settings.lake.root, written)
    arrow = load_catalog(target).load_table("okta.events").scan(selected_fields=("uuid", "target_index")).to_arrow()
    keys = Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))
    assert max(keys.values()) == 1 and {k[0] for k in keys} == expected
