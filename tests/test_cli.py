"""Options: every mistake is caught before anything runs, with one clear line."""

import subprocess
import sys

import pytest

from pipeline.options import LakeOptions
from tests.helpers import REPO, run_pipeline, write_jsonl


@pytest.fixture
def export(tmp_path):
    return write_jsonl(tmp_path / "e.jsonl", [{"uuid": "u", "eventType": "personal.x",
                                               "published": "2026-03-01T00:00:00Z"}])


@pytest.mark.parametrize("args, message", [
    (["--input={export}"], "--output is required"),
    (["--output={lake}"], "--input is required with --source=file"),
    (["--input={export}", "--ouput={lake}"], "unknown option --ouput (did you mean --output?)"),
    (["--input={export}", "--output={lake}", "--event_types=personal.*,bad type"],
     "--event_types: 'bad type' is not an event type"),
    (["--input={export}", "--output={lake}", "--batch_size=0"], "--batch_size must be between 1 and 100000"),
    (["--input={export}", "--output={lake}", "--run_id=../escape"], "--run_id may only use letters"),
    (["--input=/no/such/dir/*.jsonl", "--output={lake}"], "--input '/no/such/dir/*.jsonl' matched no files"),
])
def test_bad_options_fail_fast_with_a_clear_line(args, message, export, tmp_path):
    run = run_pipeline(*(a.format(export=export, lake=tmp_path / "lake") for a in args))
    assert run.code == 2
    assert f"error: {message}" in run.stderr
    assert not (tmp_path / "lake").exists()


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


def test_boolean_options_take_template_style_values(export, tmp_path):
    for value, has_raw in (("--raw_event=false", False), ("--raw_event=true", True)):
        lake = tmp_path / value.split("=")[1]
        assert run_pipeline(f"--input={export}", f"--output={lake}", value).code == 0
        import pyarrow.parquet as pq
        [path] = lake.glob("*/*/*.parquet")
        assert ("raw_event" in pq.read_schema(path).names) is has_raw


def test_progress_lines_are_printed_unless_quiet(tmp_path):
    from eventgen import export_lines

    export = tmp_path / "big.jsonl"
    export.write_bytes(b"".join(line_ + b"\n" for line_ in export_lines(60_000, seed=3)))
    proc = subprocess.run([sys.executable, "-m", "pipeline", f"--input={export}", f"--output={tmp_path}/lake",
                           "--progress_interval=0.2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line_ for line_ in proc.stderr.splitlines() if line_.startswith("progress")]
    assert lines, proc.stderr
    assert "events read" in lines[-1] and "/s)" in lines[-1] and "rows staged" in lines[-1]
    quiet = subprocess.run([sys.executable, "-m", "pipeline", f"--input={export}", f"--output={tmp_path}/lake2",
                            "--progress_interval=0.2", "--quiet"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert quiet.returncode == 0
    assert "progress" not in quiet.stderr


def test_dead_letters_can_go_elsewhere(tmp_path):
    export = write_jsonl(tmp_path / "e.jsonl", ["not json", {"uuid": "u", "eventType": "personal.x",
                                                              "published": "2026-03-01T00:00:00Z"}])
    run = run_pipeline(f"--input={export}", f"--output={tmp_path}/lake", f"--dead_letter={tmp_path}/dlq",
                       "--run_id=r1")
    assert run.code == 0
    [path] = (tmp_path / "dlq" / "r1").glob("*.jsonl")
    assert "not valid JSON" in path.read_text()
    assert not (tmp_path / "lake" / "_dead_letter").exists()


# --- The launch path, as a new user meets it -----------------------------------------------------------------

DATAFLOW = ["--runner=DataflowRunner", "--region=us-central1", "--staging_location=gs://okta-lake-test/staging"]
BACKFILL = ["--source=okta", "--okta_org_url=https://acme.okta.com", "--since={since}", "--until={until}",
            "--output=gs://okta-lake-test/lake"]


def _backfill_args(*extra: str) -> list[str]:
    import datetime as dt

    until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    since = until - dt.timedelta(hours=1)
    return [a.format(since=since.isoformat().replace("+00:00", "Z"), until=until.isoformat().replace("+00:00", "Z"))
            for a in BACKFILL] + list(extra)


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "okta-token"
    path.write_text("file-token-0123")
    return path


@pytest.mark.parametrize("flags, message", [
    (["--project=p", "--temp_location=gs://okta-lake-test/tmp"], "--project 'p' is not a Google Cloud project id"),
    (["--project=okta-lake-test", "--temp_location=gs://b/tmp"],
     "--temp_location 'gs://b/tmp': 'b' is not a Cloud Storage bucket name"),
])
def test_bad_cloud_locations_are_one_line_before_anything_starts(flags, message, token_file, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    run = run_pipeline(*DATAFLOW, *flags, *_backfill_args(f"--okta_token_file={token_file}"))
    assert run.code == 2, run.stderr
    assert f"error: {message}" in run.stderr
    assert "Traceback" not in run.stderr and "submitted" not in run.stderr


def test_an_environment_token_is_refused_on_a_service_runner(monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", "env-token-0123")
    run = run_pipeline(*DATAFLOW, "--project=okta-lake-test", "--temp_location=gs://okta-lake-test/tmp",
                       *_backfill_args())
    assert run.code == 2
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "OKTA_API_TOKEN is set on this machine" in line and "--okta_token_file" in line
    assert "Secret Manager" in line and "--okta_private_key_file" in line
    assert "env-token-0123" not in run.stderr


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
def test_a_dry_run_says_nothing_was_submitted_or_written(streaming, token_file, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    args = _backfill_args(f"--okta_token_file={token_file}")
    if streaming:
        args = ["--streaming", "--source=okta", "--okta_org_url=https://acme.okta.com",
                "--state=gs://okta-lake-test/state/tail.json", "--output=gs://okta-lake-test/lake",
                f"--okta_token_file={token_file}"]
    run = run_pipeline(*DATAFLOW, "--dry_run=True", "--project=okta-lake-test",
                       "--temp_location=gs://okta-lake-test/tmp", *args)
    assert run.code == 0, run.stderr
    assert "dry run" in run.stderr and "nothing was submitted" in run.stderr and "nothing was written" in run.stderr
    assert "submitted run" not in run.stderr and "every window committed" not in run.stderr


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
    args = [a.replace("https://acme.okta.com", org).replace("gs://okta-lake-test/lake", str(lake))
            for a in _backfill_args(f"--okta_token_file={token_file}")]
    run = run_pipeline(*args)
    assert run.code == 1
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "UnsafeUrl: refusing the next link https://evil.example.com/api/v1/logs?after=abc" in line
    assert "another origin" in line and org in line
    assert "no cursor was stored" not in line  # a backfill has no cursor
    assert "Traceback" not in run.stderr
    assert seen and all(path.startswith("/api/v1/logs") for path in seen)  # nothing went to the other origin
    assert not list(lake.glob("*/*/*.parquet"))  # nothing committed
