"""``python -m pipeline --source=okta`` against the local System Log server: backfills, incremental runs, crashes."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.helpers import REPO, dead_letters, run_pipeline
from tests.support.okta import (
    TOKEN,
    assert_lake_exact,
    iso,
    make_events,
    personal,
    recent_start,
)

STEP = dt.timedelta(seconds=1)


pytestmark = pytest.mark.usefixtures("okta_token_env")


def backfill(server, lake: Path, since: dt.datetime, until: dt.datetime, *extra: str):
    return run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--since={iso(since)}",
                        f"--until={iso(until)}", f"--output={lake}", *extra)


def test_backfill_writes_every_personal_event_once_across_slices(okta_server, tmp_path):
    start = recent_start()
    events = make_events(3000, start, STEP)  # 50 minutes; slice boundaries fall exactly on events
    server = okta_server(events)
    run = backfill(server, tmp_path / "lake", start, start + 3000 * STEP, "--slice=10m")
    assert run.code == 0, run.stderr
    assert_lake_exact(tmp_path / "lake", events)
    assert run.count("events read") == 1500 and run.count("filtered out") == 0  # the filter was pushed down
    # Five slices of 300 personal events: one page each, nothing read twice.
    assert run.count("pages") == 5 and server.stats.requests == 5
    assert "check: read 1,500 = written 1,500" in run.stdout


def test_backfill_without_pushdown_filters_on_the_client(okta_server, tmp_path):
    start = recent_start()
    events = make_events(1200, start, STEP, personal_every=3)
    server = okta_server(events)
    run = backfill(server, tmp_path / "lake", start, start + 1200 * STEP, "--okta_filter_pushdown=false")
    assert run.code == 0, run.stderr
    assert_lake_exact(tmp_path / "lake", events)
    assert run.count("events read") == 1200 and run.count("filtered out") == 800
    assert all("filter=" not in r.path for r in server.stats.records)


def test_query_timeouts_split_slices_until_they_pass(okta_server, tmp_path):
    start = recent_start()
    events = make_events(4000, start, STEP)
    server = okta_server(events, timeout_events=700)  # a bounded query matching more than 700 events times out
    run = backfill(server, tmp_path / "lake", start, start + 4000 * STEP, "--slice=2h")
    assert run.code == 0, run.stderr
    assert_lake_exact(tmp_path / "lake", events)
    assert run.count("slice_splits") >= 2
    assert 500 in server.stats.by_status


def test_backfill_under_network_faults_is_still_exact(okta_server, tmp_path):
    start = recent_start()
    events = make_events(3000, start, STEP)
    server = okta_server(events, fault_seed=11, fault_5xx=0.15, fault_reset=0.1, fault_truncate=0.1)
    run = backfill(server, tmp_path / "lake", start, start + 3000 * STEP, "--slice=5m", "--okta_page_limit=100")
    assert run.code == 0, run.stderr
    assert_lake_exact(tmp_path / "lake", events)
    failed = sum(n for status, n in server.stats.by_status.items() if status != 200)
    assert failed >= 1 and run.count("retries") >= 1  # truncated bodies fail the client, not the server
    assert run.count("pages") <= server.stats.by_status[200]  # a truncated body was a 200 to the server


def test_oauth_backfill_reads_the_key_from_a_file(okta_server, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    monkeypatch.delenv("OKTA_API_TOKEN")
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "service-app.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    start = recent_start()
    events = make_events(500, start, STEP)
    server = okta_server(events, token=None, oauth_client_id="0oaLake", oauth_public_key=public, require_dpop=True)
    run = backfill(server, tmp_path / "lake", start, start + 500 * STEP, "--okta_client_id=0oaLake",
                   f"--okta_private_key_file={key_file}", "--okta_dpop=true")
    assert run.code == 0, run.stderr
    assert_lake_exact(tmp_path / "lake", events)
    assert {r.auth_scheme for r in server.stats.records} == {"DPoP"}


def test_incremental_runs_resume_from_the_stored_cursor(okta_server, tmp_path):
    start = recent_start(hours_back=3)
    first = make_events(1500, start, STEP)
    server = okta_server(first)
    lake, state = tmp_path / "lake", tmp_path / "state" / "cursor.json"

    def incremental():
        return run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--state={state}",
                            f"--output={lake}", "--lookback=1d")

    run = incremental()
    assert run.code == 0, run.stderr
    assert_lake_exact(lake, first)
    stored = json.loads(state.read_text())
    assert stored["org_url"] == server.url and "after=" in stored["next_url"] and TOKEN not in state.read_text()
    assert run.count("cursor_stored") == 1

    # New events, one of them published an hour before the first run's events but persisted only now.
    late = make_events(1, start - dt.timedelta(hours=1), STEP, salt=5)[0]
    new = make_events(40, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30), STEP, salt=6)
    server.append([late, *new])
    before = server.stats.requests
    run = incremental()
    assert run.code == 0, run.stderr
    assert_lake_exact(lake, first + [late] + new)
    assert run.count("events read") == len(personal([late, *new]))  # nothing re-read
    assert server.stats.requests - before == 1  # one short page of news: caught up, its next link not asked for

    # Nothing new: one request, nothing written, the cursor moves on.
    before = server.stats.requests
    run = incremental()
    assert run.code == 0 and run.count("events read") == 0
    assert server.stats.requests - before == 1
    assert_lake_exact(lake, first + [late] + new)


def test_a_cursor_from_another_org_or_filter_is_refused(okta_server, tmp_path):
    server = okta_server(make_events(10, recent_start(), STEP))
    state = tmp_path / "cursor.json"
    state.write_text(json.dumps({"org_url": "https://other.okta.com", "filter": 'eventType sw "personal."',
                                 "next_url": "https://other.okta.com/api/v1/logs?after=x", "updated_at": "",
                                 "run_id": "", "version": 1}))
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--state={state}",
                       f"--output={tmp_path / 'lake'}")
    assert run.code == 1  # fatal: the cursor is not this run's
    assert "https://other.okta.com" in run.stderr and "use another --state" in run.stderr
    assert server.stats.requests == 0


def test_an_okta_error_fails_the_run_with_one_clear_line_and_no_secret(okta_server, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OKTA_API_TOKEN", "00-not-the-right-token-c2VjcmV0")
    start = recent_start()
    server = okta_server(make_events(10, start, STEP))
    run = backfill(server, tmp_path / "lake", start, start + 10 * STEP)
    assert run.code == 1
    assert "401" in run.stderr and "E0000011" in run.stderr and "/api/v1/logs" in run.stderr
    assert "Traceback" not in run.stderr
    for text in (run.stdout, run.stderr, caplog.text):
        assert "00-not-the-right-token-c2VjcmV0" not in text


@pytest.mark.parametrize("args, message", [
    (["--since=2020-01-01T00:00:00Z", "--until=2020-01-02T00:00:00Z"], "more than 180 days back"),
    (["--since=2026-11-20T00:00:00Z", "--until=2026-11-19T00:00:00Z"], "must be after --since"),
    (["--since=yesterday", "--until=2026-11-19T00:00:00Z"], "--since"),
    (["--since=2026-11-20T00:00:00Z"], "--since needs --until"),
    ([], "needs either --since/--until"),
    (["--state=/tmp/x.json", "--lookback=400d"], "--lookback may be at most 180 days"),
    (["--state=/tmp/x.json", "--okta_rate_share=0"], "--okta_rate_share"),
    (["--state=/tmp/x.json", "--okta_page_limit=5000"], "--okta_page_limit"),
])
def test_bad_okta_options_are_refused_before_anything_runs(tmp_path, args, message):
    run = run_pipeline("--source=okta", "--okta_org_url=https://acme.okta.com", f"--output={tmp_path}", *args)
    assert run.code == 2 and message in run.stderr, run.stderr


def test_unsafe_urls_and_missing_credentials_are_refused(tmp_path, monkeypatch):
    run = run_pipeline("--source=okta", "--okta_org_url=http://acme.okta.com", "--state=/tmp/s.json",
                       f"--output={tmp_path}")
    assert run.code == 2 and "https" in run.stderr
    monkeypatch.delenv("OKTA_API_TOKEN")
    run = run_pipeline("--source=okta", "--okta_org_url=https://acme.okta.com", "--state=/tmp/s.json",
                       f"--output={tmp_path}")
    assert run.code == 2 and "OKTA_API_TOKEN" in run.stderr


# --- crash and resume ------------------------------------------------------------------------------------------


def _start_run(server, lake: Path, state: Path, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline", "--quiet", "--source=okta", f"--okta_org_url={server.url}",
               f"--state={state}", f"--output={lake}", "--lookback=1d", "--okta_page_limit=100"]
    env = {**os.environ, "OKTA_API_TOKEN": TOKEN}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _manifests(lake: Path) -> int:
    return len(list((lake / "_runs").glob("*.json"))) if (lake / "_runs").exists() else 0


def _reached(kind: str, lake: Path, state: Path) -> bool:
    if kind == "staging":  # rows are being staged
        return (lake / "_staging").exists() and any((lake / "_staging").rglob("*.parquet.staged"))
    if kind == "partition":  # the first partition file is committed, others may not be
        return any(lake.glob("event_date=*/event_type=*/*.parquet"))
    if kind == "commit":  # the run manifest is written: between the lake commit and the cursor
        return bool(_manifests(lake))
    if kind == "cursor":  # the cursor is stored (the run is ending)
        return state.exists()
    return False


# Eleven points of an incremental run, from the first request to after the cursor is stored.
@pytest.mark.parametrize("kill_at", ["request:1", "request:3", "request:5", "request:8", "request:11", "request:13",
                                     "request:15", "staging", "partition", "commit", "cursor"])
def test_killed_incremental_run_resumes_with_every_event_exactly_once(okta_server, tmp_path, kill_at):
    start = recent_start(hours_back=2)
    events = make_events(3000, start, STEP)  # 1500 personal: 15 pages of 100, 5 requests per second
    server = okta_server(events, rate_limit=5, rate_window_seconds=1)
    lake, state, log = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "runs.log"

    run = _start_run(server, lake, state, log)
    deadline = time.monotonic() + 120
    kind, _, value = kill_at.partition(":")
    while run.poll() is None and time.monotonic() < deadline:
        if kind == "request" and server.stats.requests >= int(value):
            break
        if kind != "request" and _reached(kind, lake, state):
            break
        time.sleep(0.01)
    killed = run.poll() is None
    if killed:
        run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    if kind == "request":
        assert killed, "the run ended before the kill point"
        assert not state.exists(), "a cursor was stored before the lake was committed"

    rerun = _start_run(server, lake, state, log)
    assert rerun.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert_lake_exact(lake, events)
    assert json.loads(state.read_text())["next_url"]
    assert not dead_letters(lake)
    assert TOKEN not in log.read_text()


def test_local_outputs_that_cannot_be_written_are_refused_up_front(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        ([f"--output={blocker}", "--state=/tmp/s.json"], "is a file, not a folder"),
        ([f"--output={blocker}/lake", "--state=/tmp/s.json"], "cannot be created"),
        ([f"--output={tmp_path}/lake", f"--state={blocker}/cursor.json"], "--state"),
        ([f"--output={tmp_path}/lake", f"--state={tmp_path}"], "is a folder"),
    ]
    for args, message in cases:
        run = run_pipeline("--source=okta", "--okta_org_url=https://acme.okta.com", *args)
        assert run.code == 2 and message in run.stderr, (args, run.stderr)
