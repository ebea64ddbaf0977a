"""The command line as a process; failed runs against real HTTP servers (hostile, refusing, down) and exit codes."""

import datetime as dt
import json
import subprocess
import sys

import pytest

from pipeline.options import LakeOptions
from tests.support.helpers import REPO, run_pipeline
from tests.support.okta import backfill_args, iso, make_events, recent_start


def test_help_lists_every_option():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    import argparse
    parser = argparse.ArgumentParser()
    LakeOptions._add_argparse_args(parser)
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--"):
                assert flag in proc.stdout


def test_progress_lines_are_printed_unless_quiet(tmp_path):
    from devtools.eventgen import export_lines

    export = tmp_path / "big.jsonl"
    export.write_bytes(b"".join(line_ + b"\n" for line_ in export_lines(60_000, seed=3)))
    # One process decodes (no decode processes, which may finish before the progress printer starts).
    proc = subprocess.run([sys.executable, "-m", "pipeline", f"--input={export}", f"--output={tmp_path}/lake",
                           "--progress_interval=0.2", "--decode_processes=1"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line_ for line_ in proc.stderr.splitlines() if line_.startswith("progress")]
    assert lines, proc.stderr
    assert "events read" in lines[-1] and "/s)" in lines[-1] and "rows staged" in lines[-1]
    quiet = subprocess.run([sys.executable, "-m", "pipeline", f"--input={export}", f"--output={tmp_path}/lake2",
                            "--progress_interval=0.2", "--quiet", "--decode_processes=1"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0
    assert "progress" not in quiet.stderr


def test_a_run_as_a_process_prints_its_summary_and_writes_the_lake(tmp_path):
    """``python -m pipeline`` freezes its objects before it exits (no final garbage collection over them): the
    summary still reaches a pipe, the lake is whole and queryable, and an option error still exits 2 with its
    message."""
    import duckdb

    from devtools.eventgen import export_lines

    export = tmp_path / "e.jsonl"
    export.write_bytes(b"".join(line_ + b"\n" for line_ in export_lines(3_000, seed=5)))
    proc = subprocess.run([sys.executable, "-m", "pipeline", f"--input={export}", f"--output={tmp_path}/lake"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    written = int(proc.stdout.split("written ")[1].split()[0].replace(",", ""))
    assert written > 0 and any("check: read" in line_ and line_.endswith("OK") for line_ in proc.stdout.splitlines())
    events = duckdb.connect().execute(f"SELECT count(DISTINCT uuid) FROM read_parquet('{tmp_path}/lake/**/*.parquet', "
                        "hive_partitioning=true)").fetchone()[0]
    assert events == written
    bad = subprocess.run([sys.executable, "-m", "pipeline", f"--input={export}", "--batch_size=0",
                          f"--output={tmp_path}/lake"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--batch_size must be between" in bad.stderr


@pytest.mark.parametrize("other_thread", ["none", "daemon", "non-daemon"])
def test_exiting_without_collecting_is_an_ordinary_exit_with_the_objects_frozen(other_thread):
    script = (
        "import atexit, gc, sys, threading, time\n"
        "from pipeline.main import exit_without_collecting\n"
        "atexit.register(lambda: print('handler ran', 'frozen' if gc.get_freeze_count() else 'not frozen', "
        "flush=True))\n"
        + (f"threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True)), "
           f"daemon={other_thread == 'daemon'}).start()\n" if other_thread != "none" else "")
        + "print('buffered', end='')\n"
        "exit_without_collecting(3)\n"
        "print('never')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout.startswith("buffered") and "never" not in proc.stdout
    assert "handler ran frozen" in proc.stdout  # the atexit handlers run, after the freeze
    # As any exit: a non-daemon thread is waited for; a daemon thread is not.
    assert ("thread done" in proc.stdout) is (other_thread == "non-daemon")


@pytest.fixture
def foreign_next_link_server():
    """A System Log stand-in whose first page's next link points at another origin."""
    import http.server
    import json
    import threading

    requests_seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests_seen.append(self.path)
            body = json.dumps([{"uuid": "u-1", "eventType": "personal.x", "published": "2026-03-01T00:00:00.000Z",
                                "actor": {"id": "a", "type": "User"}}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Link", '<https://evil.example.com/api/v1/logs?after=abc>; rel="next"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests_seen
    server.shutdown()
    server.server_close()


def test_a_next_link_to_another_origin_is_the_one_line_of_a_failed_backfill(foreign_next_link_server, tmp_path,
                                                                            token_file, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    org, seen = foreign_next_link_server
    lake = tmp_path / "lake"
    args = backfill_args(f"--okta_token_file={token_file}", org=org, output=str(lake))
    run = run_pipeline(*args)
    assert run.code == 1  # fatal: the server must be fixed (or not trusted), a rerun would refuse it again
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "UnsafeUrl: refusing the next link https://evil.example.com/api/v1/logs?after=abc" in line
    assert "another origin" in line and org in line
    assert "no cursor was stored" not in line  # a backfill has no cursor
    assert "Traceback" not in run.stderr
    assert seen and all(path.startswith("/api/v1/logs") for path in seen)  # nothing went to the other origin
    assert not list(lake.glob("*/*/*.parquet"))  # nothing committed


def _error_line(run) -> str:
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    return line


def test_a_refused_token_is_fatal_exit_1_and_an_okta_that_stays_down_is_retryable_exit_75(
        okta_server, okta_token_env, fast_retries, tmp_path, monkeypatch):
    """What a scheduler needs: 1 means fix something first, 75 (EX_TEMPFAIL) means run it again as is."""
    start = recent_start()
    events = make_events(20, start, dt.timedelta(seconds=30))
    window = (f"--since={iso(start)}", f"--until={iso(start + dt.timedelta(minutes=10))}")

    down = okta_server(events, fault_5xx=1.0, fault_seed=1)  # every answer a 502/503/504, retries exhausted
    run = run_pipeline("--source=okta", f"--okta_org_url={down.url}", *window, f"--output={tmp_path / 'down'}",
                       "--run_id=down")
    assert run.code == 75, run.stderr
    line = _error_line(run)
    assert "OktaApiError" in line and "gave up after 2 attempts" in line and line.endswith("(retryable: rerun as is)")
    assert json.loads((tmp_path / "down" / "_runs" / "down.failed.json").read_text())["retryable"] is True

    monkeypatch.setenv("OKTA_API_TOKEN", "00-revoked-token")
    refused = okta_server(events)
    run = run_pipeline("--source=okta", f"--okta_org_url={refused.url}", *window, f"--output={tmp_path / 'refused'}",
                       "--run_id=refused")
    assert run.code == 1, run.stderr
    line = _error_line(run)
    assert "HTTP 401" in line and line.endswith("(fatal: fix the cause before rerunning)")
    assert json.loads((tmp_path / "refused" / "_runs" / "refused.failed.json").read_text())["retryable"] is False
    assert "00-revoked-token" not in run.stderr + run.stdout

    monkeypatch.setenv("OKTA_API_TOKEN", okta_token_env)
    rerun = run_pipeline("--source=okta", f"--okta_org_url={refused.url}", *window, f"--output={tmp_path / 'refused'}")
    assert rerun.code == 0, rerun.stderr
