"""Runs that commit the same partitions at the same moment, into one lake on local disk, gs:// and s3://.

Each writer is a whole run in its own process (``python -m pipeline`` through tests/support/kill_points.py),
with an input that overlaps the others'; the commits are made to start together. The lake must then
hold every event once: the partition commit leases (sinks/lake/locks.py) let one commit at a time read
and publish a partition. A writer killed while it holds a lease blocks the others only for its stale time.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from sinks.lake import locks
from storage import fs
from tests.support import kill_points
from tests.support.helpers import run_pipeline, use_in_this_process, write_jsonl
from tests.support.okta import expected_row_keys, make_events
from tests.support.stores import stored_row_keys

WRITERS = 4
EVENTS = 240  # 4 partitions (2 dates x 2 personal types); writer i reads events [40 i, 40 i + 120)


@pytest.fixture(params=["local", "gs", "s3"])
def lake_and_options(request, tmp_path):
    """(lake URI, extra run options) on each store; the object stores' environment is set for the subprocesses."""
    if request.param == "local":
        return str(tmp_path / "lake"), []
    base, extra = request.getfixturevalue("cloud_" + request.param)
    return f"{base}/concurrent-{dt.datetime.now().strftime('%H%M%S%f')}", extra


@pytest.fixture
def cloud_gs(gcs_emulator, monkeypatch):
    for key, value in gcs_emulator.items():
        monkeypatch.setenv(key, value)
    return "gs://lake-bucket", []


@pytest.fixture
def cloud_s3(s3_server):
    return "s3://lake", s3_server


def inputs(tmp_path, events: list[dict]) -> list[tuple[str, list[dict]]]:
    """Each writer's export and its events: [40 i, 40 i + 120) of 240, so each event is in one to three."""
    step = len(events) // (WRITERS + 2)
    slices = [events[i * step:i * step + 3 * step] for i in range(WRITERS)]
    return [(str(write_jsonl(tmp_path / f"writer-{i}.jsonl", part)), part) for i, part in enumerate(slices)]


def union(parts: list[list[dict]]) -> list[dict]:
    return list({e["uuid"]: e for part in parts for e in part}.values())


def lease_files(lake: str) -> list[str]:
    return [path for path in fs.list_files(fs.join(lake, locks.LOCKS_DIR, "**")) if locks.lease_number(path)]


def start(point: str, marker, log, export: str, lake: str, extra: list[str]) -> subprocess.Popen:
    return kill_points.start(point, marker, log, "--source=file", f"--input={export}", f"--output={lake}",
                             "--decode_processes=1", *extra)


def finish(process: subprocess.Popen, log) -> None:
    try:
        code = process.wait(timeout=600)
    finally:
        kill_points.kill(process)
    assert code == 0, log.read_text()[-3000:]


def test_four_overlapping_writers_committing_at_once_leave_each_event_once(lake_and_options, tmp_path):
    lake, extra = lake_and_options
    start_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(EVENTS, start_at, dt.timedelta(minutes=12))
    exports = inputs(tmp_path, events)
    logs = [tmp_path / f"writer-{i}.log" for i in range(WRITERS)]
    writers = [start(f"together:{WRITERS}", tmp_path / "barrier", log, export, lake, extra)
               for (export, _), log in zip(exports, logs)]
    for process, log in zip(writers, logs):
        finish(process, log)
    use_in_this_process(extra)
    got = stored_row_keys(lake)
    assert [key for key, n in got.items() if n > 1] == []
    assert got == expected_row_keys(union([part for _, part in exports]))
    assert not fs.list_files(fs.join(lake, "_staging", "**"))


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_writer_killed_while_it_holds_a_lease_blocks_the_others_only_for_its_stale_time(store, tmp_path, request):
    """On s3:// the others wait for the dead lease's stale time (3 s here); on local disk they see at once that
    its process is gone (same machine and pid namespace)."""
    lake, extra = str(tmp_path / "lake"), []
    if store == "s3":
        base, extra = request.getfixturevalue("cloud_s3")
        lake = f"{base}/killed-{dt.datetime.now().strftime('%H%M%S%f')}"
        use_in_this_process(extra)
    start_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(EVENTS, start_at, dt.timedelta(minutes=12))
    exports = inputs(tmp_path, events)
    marker, log = tmp_path / "holding", tmp_path / "killed.log"
    killed = start("holding:3", marker, log, exports[0][0], lake, extra)
    try:
        kill_points.wait_for(marker, killed, log)
    finally:
        kill_points.kill(killed)
    [held] = lease_files(lake)  # the killed run's, never released: it declares a 3 s stale time
    assert locks.read_lease(held)["released"] is False and locks.read_lease(held)["stale_after"] == 3

    others = [run_pipeline("--source=file", f"--input={export}", f"--output={lake}", *extra)
              for export, _ in exports[:2]]
    assert [run.code for run in others] == [0, 0], [run.stderr for run in others]
    got = stored_row_keys(lake)
    assert [key for key, n in got.items() if n > 1] == []
    assert got == expected_row_keys(union([part for _, part in exports[:2]]))
    folder = held.rsplit("/", 1)[0]
    [(number, _, _)] = locks.leases(folder)
    assert number > locks.lease_number(held)  # taken over (the lower leases are deleted by the next holder)


def test_a_failed_run_leaves_no_staged_files(tmp_path):
    lake = tmp_path / "lake"
    start_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(60, start_at, dt.timedelta(minutes=12))
    export = write_jsonl(tmp_path / "export.jsonl", events)
    first = run_pipeline("--source=file", f"--input={export}", f"--output={lake}")
    assert first.code == 0, first.stderr
    [partition] = sorted(lake.glob("event_date=*/event_type=*"))[:1]
    (partition / "foreign.parquet").write_bytes(b"not parquet")  # the next commit of it fails
    more = write_jsonl(tmp_path / "more.jsonl", make_events(60, start_at, dt.timedelta(minutes=12), salt=3))
    failed = run_pipeline("--source=file", f"--input={more}", f"--output={lake}")
    assert failed.code == 1 and "cannot read the uuid column" in failed.stderr, failed.stderr
    assert not list(lake.rglob("*.staged")) and not (lake / "_staging").exists()
