"""Faults from every side: a flaky, throttling, slow Okta; output locations that break mid-run.

With several fault seeds the lake equals the server's personal.* events exactly, row by row, and the run's
counters balance (read = kept + filtered + duplicates + dead letters). A location that becomes unwritable
fails the run with one clear line and leaves the cursor where it was; the rerun is exact.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.support.helpers import REPO, run_pipeline
from tests.support.okta import TOKEN, assert_lake_exact, make_events

STEP = dt.timedelta(seconds=1)
CHAOS = dict(fault_5xx=0.08, fault_reset=0.05, fault_truncate=0.05, fault_timeout=0.04, fault_slow=0.05,
             slow_seconds=0.3, rate_limit=15, rate_window_seconds=1, late_fraction=0.1, late_seconds=30)


pytestmark = pytest.mark.usefixtures("okta_token_env")


def history(hours_back: float = 3, count: int = 2400) -> tuple[dt.datetime, list[dict]]:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=hours_back)
    return start, make_events(count, start, STEP)


def _storm(server, stop: threading.Event) -> threading.Thread:
    """Another integration hammering the same org: it spends the rate budget, so our runs meet 429s."""
    import requests

    def one_request():
        try:
            requests.get(server.url + "/api/v1/logs?limit=1", headers={"Authorization": f"SSWS {TOKEN}"},
                         timeout=5)
        except requests.RequestException:
            pass

    def hammer():
        while not stop.is_set():
            # More than a window's budget at the same instant, every three seconds: a 429 storm.
            burst = [threading.Thread(target=one_request) for _ in range(CHAOS["rate_limit"] + 8)]
            for thread in burst:
                thread.start()
            for thread in burst:
                thread.join()
            stop.wait(3)

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_backfill_and_incremental_are_exact_under_chaos(okta_server, tmp_path, seed):
    start, events = history()
    server = okta_server(events, fault_seed=seed, **CHAOS)
    stop = threading.Event()
    storm = _storm(server, stop)
    backfill = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--since={start:%Y-%m-%dT%H:%M:%SZ}",
                            f"--until={start + len(events) * STEP + dt.timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ}",
                            "--slice=10m", "--okta_page_limit=50", f"--output={tmp_path / 'backfill'}")
    assert backfill.code == 0, backfill.stderr
    assert "-> OK" in backfill.stdout
    assert_lake_exact(tmp_path / "backfill", events)

    incremental = run_pipeline("--source=okta", f"--okta_org_url={server.url}", "--okta_page_limit=50",
                               f"--state={tmp_path / 'cursor.json'}", f"--output={tmp_path / 'incremental'}",
                               "--lookback=1d")
    assert incremental.code == 0, incremental.stderr
    assert "-> OK" in incremental.stdout
    assert_lake_exact(tmp_path / "incremental", events)
    stop.set()
    storm.join()
    faults = sum(n for status, n in server.stats.by_status.items() if status != 200)
    assert faults >= 3 and server.stats.by_status.get(429, 0) >= 1, server.stats.by_status  # it really happened


def test_streaming_tail_is_exact_under_chaos(okta_server, tmp_path):
    start, events = history(count=600)
    server = okta_server(events, fault_seed=7, **CHAOS)
    log = tmp_path / "tail.log"
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "--streaming", "--source=okta",
                            f"--okta_org_url={server.url}", f"--state={tmp_path / 'cursor.json'}",
                            f"--output={tmp_path / 'lake'}", "--window=2s", "--poll_interval=1s", "--lookback=1d",
                            "--okta_page_limit=100"], cwd=REPO, env={**os.environ, "OKTA_API_TOKEN": TOKEN},
                           stdout=log.open("wb"), stderr=subprocess.STDOUT)
    appended = []
    try:
        for batch in range(4):
            fresh = make_events(25, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1),
                                dt.timedelta(milliseconds=20), salt=40 + batch)
            server.append(fresh)
            appended += fresh
            time.sleep(1)
        from tests.support.okta import wait_for_lake

        wait_for_lake(tmp_path / "lake", events + appended, run, log, timeout=120)
    finally:
        run.kill()
        run.wait()
    assert_lake_exact(tmp_path / "lake", events + appended)


def _block_after_first_request(server, path) -> threading.Thread:
    """Once the run has reached Okta, put a regular file where ``path`` (a folder) must be created."""
    def block():
        deadline = time.monotonic() + 60
        while server.stats.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        path.write_text("in the way")

    thread = threading.Thread(target=block, daemon=True)
    thread.start()
    return thread


def test_a_state_location_that_breaks_mid_run_fails_clearly_and_keeps_the_cursor(okta_server, tmp_path):
    _, events = history(count=1200)
    server = okta_server(events, rate_limit=3, rate_window_seconds=1)
    state_dir = tmp_path / "state"
    state = state_dir / "cursor.json"
    args = ("--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={tmp_path / 'lake'}",
            "--lookback=1d", "--okta_page_limit=100")
    blocker = _block_after_first_request(server, state_dir)
    run = run_pipeline(*args)
    blocker.join()
    assert run.code == 1  # fatal: a --state path someone must fix
    error = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "state" in error[0], run.stderr
    assert error[0].endswith("(fatal: fix the cause before rerunning)")
    assert state_dir.is_file()  # the cursor was never written
    assert_lake_exact(tmp_path / "lake", events)  # the lake commit came first

    state_dir.unlink()
    rerun = run_pipeline(*args)
    assert rerun.code == 0, rerun.stderr
    assert_lake_exact(tmp_path / "lake", events)
    assert json.loads(state.read_text())["next_url"]


def test_a_lake_that_breaks_mid_run_fails_clearly_and_stores_no_cursor(okta_server, tmp_path):
    _, events = history(count=1200)
    server = okta_server(events, rate_limit=3, rate_window_seconds=1)
    lake, state = tmp_path / "lake", tmp_path / "cursor.json"
    args = ("--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
            "--lookback=1d", "--okta_page_limit=100")
    blocker = _block_after_first_request(server, lake)
    run = run_pipeline(*args)
    blocker.join()
    assert run.code == 1  # fatal: a --output path someone must fix
    error = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and str(lake) in error[0], run.stderr
    assert error[0].endswith("(fatal: fix the cause before rerunning)")
    assert not state.exists()

    lake.unlink()
    rerun = run_pipeline(*args)
    assert rerun.code == 0, rerun.stderr
    assert_lake_exact(lake, events)
    assert state.exists()
