"""Options: every mistake is caught before anything runs, with one clear line."""

import pytest

from tests.support.helpers import run_pipeline, write_jsonl
from tests.support.okta import backfill_args


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
    (["--input={export}", "--output={lake}", "--drift_cpu_share=0"], "--drift_cpu_share must be more than 0"),
    (["--input={export}", "--output={lake}", "--run_id=../escape"], "--run_id may only use letters"),
    (["--input=/no/such/dir/*.jsonl", "--output={lake}"], "--input '/no/such/dir/*.jsonl' matched no files"),
    (["--input={export}", "--output={lake}", "--metrics_port=70000"], "--metrics_port must be between 0 and 65535"),
    (["--input={export}", "--output={lake}", "--healthz_stall=soon"], "--healthz_stall must be a duration"),
    (["--streaming", "--source=pubsub", "--subscription=projects/p/subscriptions/s", "--output={lake}",
      "--window=1h", "--metrics_port=0"], "--healthz_stall 10m must be at least one --window (1h)"),
])
def test_bad_options_fail_fast_with_a_clear_line(args, message, export, tmp_path):
    run = run_pipeline(*(a.format(export=export, lake=tmp_path / "lake") for a in args))
    assert run.code == 2
    assert f"error: {message}" in run.stderr
    assert not (tmp_path / "lake").exists()


def test_boolean_options_take_template_style_values(export, tmp_path):
    for value, has_raw in (("--raw_event=false", False), ("--raw_event=true", True)):
        lake = tmp_path / value.split("=")[1]
        assert run_pipeline(f"--input={export}", f"--output={lake}", value).code == 0
        import pyarrow.parquet as pq
        [path] = lake.glob("*/*/*.parquet")
        assert ("raw_event" in pq.read_schema(path).names) is has_raw


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


@pytest.mark.parametrize("flags, message", [
    (["--project=p", "--temp_location=gs://okta-lake-test/tmp"], "--project 'p' is not a Google Cloud project id"),
    (["--project=okta-lake-test", "--temp_location=gs://b/tmp"],
     "--temp_location 'gs://b/tmp': 'b' is not a Cloud Storage bucket name"),
])
def test_bad_cloud_locations_are_one_line_before_anything_starts(flags, message, token_file, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    run = run_pipeline(*DATAFLOW, *flags, *backfill_args(f"--okta_token_file={token_file}"))
    assert run.code == 2, run.stderr
    assert f"error: {message}" in run.stderr
    assert "Traceback" not in run.stderr and "submitted" not in run.stderr


def test_an_environment_token_is_refused_on_a_service_runner(monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", "env-token-0123")
    run = run_pipeline(*DATAFLOW, "--project=okta-lake-test", "--temp_location=gs://okta-lake-test/tmp",
                       *backfill_args())
    assert run.code == 2
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "OKTA_API_TOKEN is set on this machine" in line and "--okta_token_file" in line
    assert "Secret Manager" in line and "--okta_private_key_file" in line
    assert "env-token-0123" not in run.stderr


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
def test_a_dry_run_says_nothing_was_submitted_or_written(streaming, token_file, monkeypatch):
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)
    args = backfill_args(f"--okta_token_file={token_file}")
    if streaming:
        args = ["--streaming", "--source=okta", "--okta_org_url=https://acme.okta.com",
                "--state=gs://okta-lake-test/state/tail.json", "--output=gs://okta-lake-test/lake",
                f"--okta_token_file={token_file}"]
    run = run_pipeline(*DATAFLOW, "--dry_run=True", "--project=okta-lake-test",
                       "--temp_location=gs://okta-lake-test/tmp", *args)
    assert run.code == 0, run.stderr
    assert "dry run" in run.stderr and "nothing was submitted" in run.stderr and "nothing was written" in run.stderr
    assert "submitted run" not in run.stderr and "every window committed" not in run.stderr
