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
