"""Credentials: Secret Manager references, and no secret in any output, log, file or error of any mode."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.helpers import REPO, run_pipeline
from tests.support.okta import assert_lake_exact, make_events, personal

SECRET = "00-SECRET-canary-7f3a9c1e5b"  # recognisable: every test greps for it
STEP = dt.timedelta(seconds=1)


@pytest.fixture
def secret_manager(gce_metadata, monkeypatch):
    """A loopback stand-in for Secret Manager's ``:access`` call holding one secret, projects/p/secrets/okta."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization", "")))
            if self.path == "/v1/projects/p/secrets/okta/versions/latest:access":
                body = json.dumps({"name": "projects/p/secrets/okta/versions/1",
                                   "payload": {"data": base64.b64encode(SECRET.encode()).decode()}}).encode()
                self.send_response(200)
            else:
                body = b'{"error": {"code": 404, "status": "NOT_FOUND"}}'
                self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for key, value in gce_metadata.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SECRET_MANAGER_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield seen
    server.shutdown()


def everything_written(*roots: Path) -> str:
    text = []
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                text.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(text)


def test_a_backfill_reads_its_token_from_secret_manager(okta_server, secret_manager, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    caplog.set_level(logging.DEBUG)
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    events = make_events(300, start, STEP)
    server = okta_server(events, token=SECRET)
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", "--okta_token_file=projects/p/secrets/okta",
                       f"--since={start:%Y-%m-%dT%H:%M:%SZ}", f"--until={start + 300 * STEP:%Y-%m-%dT%H:%M:%SZ}",
                       f"--output={tmp_path / 'lake'}")
    assert run.code == 0, run.stderr
    assert_lake_exact(tmp_path / "lake", events)
    assert secret_manager and all(auth == "Bearer dummy-emulator-token" for _, auth in secret_manager)
    assert SECRET not in run.stdout + run.stderr + caplog.text + everything_written(tmp_path)


def test_a_missing_secret_is_one_clear_line_before_anything_runs(secret_manager, tmp_path, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    run = run_pipeline("--source=okta", "--okta_org_url=https://acme.okta.com",
                       "--okta_token_file=projects/p/secrets/nope", "--state=/tmp/unused.json",
                       f"--output={tmp_path}")
    assert run.code == 2
    assert "projects/p/secrets/nope" in run.stderr and "secretAccessor" in run.stderr


def test_no_mode_lets_the_token_out(okta_server, tmp_path):
    """Backfill, incremental and streaming runs with a canary token and hostile input: grep everything."""
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    events = make_events(200, start, STEP)
    broken = dict(personal(make_events(1, start, STEP, salt=3))[0], actor=["not", "an", "object"])
    server = okta_server(events + [broken], token=SECRET)
    env = {**os.environ, "OKTA_API_TOKEN": SECRET}
    since, until = f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{start + 200 * STEP:%Y-%m-%dT%H:%M:%SZ}"
    base = [sys.executable, "-m", "pipeline", "--source=okta", f"--okta_org_url={server.url}", "--verbose"]
    runs = [
        base + [f"--since={since}", f"--until={until}", f"--output={tmp_path / 'backfill'}"],
        base + [f"--state={tmp_path / 'state.json'}", f"--output={tmp_path / 'incremental'}", "--lookback=1d"],
        base + ["--streaming", f"--state={tmp_path / 'tail.json'}", f"--output={tmp_path / 'tail'}",
                "--lookback=1d", "--window=2s", "--poll_interval=1s", "--stop_after=8s"],
        # A wrong org URL and a refused next link: the errors name requests, never the credential.
        base[:4] + ["--okta_org_url=http://10.0.0.1", f"--since={since}", f"--until={until}",
                    f"--output={tmp_path / 'refused'}"],
    ]
    outputs = []
    for command in runs:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        outputs.append(done.stdout + done.stderr)
    assert (tmp_path / "tail").exists() and any((tmp_path / "backfill" / "_dead_letter").rglob("*.jsonl"))
    assert "--okta_org_url" in outputs[3] and "https" in outputs[3]
    for output in outputs:
        assert SECRET not in output
    assert SECRET not in everything_written(tmp_path)
