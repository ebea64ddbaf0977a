"""A batch run that stops at one point, for kill -9 tests.

``python -m tests.support.kill_points POINT MARKER [pipeline args]``.

POINT is where the run pauses (it touches MARKER, then sleeps until it is killed):

- ``staging``: a staged Parquet file is half written (a row group, no footer);
- ``commit``: one partition is committed, the others are not;
- ``finish``: every partition and dead letter is committed, the manifest is not written;
- ``slow``: no pause; the run is slowed instead (a 2 s wait before the first commit, 0.3 s
  after each, 0.05 s per staged write) and renews its staging lease every 0.2 s, so a
  reader or another run's clean-up can work against it while it lives. MARKER is touched
  before the first commit.
- ``together:N``: no pause; before its first partition commit the run waits until N runs have
  reached theirs (MARKER is a folder: each run adds a file named by its pid), so N runs
  commit the same partitions at the same moment.
- ``holding:S``: the run's commit leases go stale after S seconds (instead of the module's
  default); it pauses while it holds one, right before its first publish.

Points of a streaming window's commit (the Okta tail, the local Pub/Sub loop), at its first commit that holds rows:

- ``window-partition``: one partition of the window is committed to the lake, the others are not;
- ``window-snapshot``: the lake holds the window, the Iceberg snapshot is not committed;
- ``window-cursor``: the lake and the Iceberg table hold the window, the Okta cursor is not stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sinks.lake import beam as lake
from sinks.lake import locks, staging
from storage import fs
from tests.support.helpers import REPO


def pause(marker: Path) -> None:
    marker.touch()
    time.sleep(3600)


def together(marker: Path, runs: int, timeout: float = 300) -> None:
    marker.mkdir(parents=True, exist_ok=True)
    (marker / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(marker.iterdir())) < runs and time.monotonic() < deadline:
        time.sleep(0.02)


def install_window(point: str, marker: Path) -> None:
    """The ``window-*`` points (see the module's docstring)."""
    from sinks.lake import window
    from streaming import okta_tail, window_buffer

    if point == "window-partition":
        commit = window.commit_partition

        def partition_commit(*args, **kwargs):
            result = commit(*args, **kwargs)
            if result.files:
                pause(marker)
            return result

        window.commit_partition = partition_commit
    elif point == "window-snapshot":
        snapshot = window_buffer.commit_snapshot

        def commit_snapshot(settings, window_name, results, *args, **kwargs):
            if any(result.written for result in results):
                pause(marker)
            return snapshot(settings, window_name, results, *args, **kwargs)

        window_buffer.commit_snapshot = commit_snapshot
    elif point == "window-cursor":
        okta_tail.OktaTail._store = lambda self, state: pause(marker)


def install(point: str, marker: Path) -> None:
    if point.startswith("window-"):
        install_window(point, marker)
        return
    write, commit, finish = fs.ParquetFileWriter.write, lake.commit_partition, lake.FinishRun.process
    commits = []
    point, _, value = point.partition(":")

    def staged_write(self, table):
        write(self, table)
        if self.uri.endswith(staging.STAGED_SUFFIX):
            if point == "staging":
                pause(marker)
            if point == "slow":
                time.sleep(0.05)

    def partition_commit(*args, **kwargs):
        if point == "together" and not commits:
            together(marker, int(value))
        if point == "slow" and not commits:
            marker.touch()
            time.sleep(2.0)
        result = commit(*args, **kwargs)
        commits.append(result)
        if point == "commit":
            pause(marker)
        if point == "slow":
            time.sleep(0.3)
        return result

    def finish_run(self, results):
        if point == "finish":
            pause(marker)
        yield from finish(self, results)

    fs.ParquetFileWriter.write = staged_write
    lake.commit_partition = partition_commit
    lake.FinishRun.process = finish_run
    if point == "slow":
        staging.HEARTBEAT_SECONDS = 0.2
    if point == "holding":
        locks.STALE_AFTER_SECONDS = float(value)
        check = locks.PartitionLease.check

        def check_then_pause(self):
            check(self)
            pause(marker)

        locks.PartitionLease.check = check_then_pause


# --- for the tests: start such a run, wait for its point, kill it ---------------------------------

def start(point: str, marker: Path, log: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.support.kill_points", point, str(marker), "--quiet", *args]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(marker: Path, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run never reached its kill point (exit {process.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.02)


def kill(process: subprocess.Popen) -> None:
    """``kill -9`` the run (its whole process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def main(argv: list[str]) -> int:
    point, marker, *args = argv
    install(point, Path(marker))
    from pipeline.main import main as run

    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
