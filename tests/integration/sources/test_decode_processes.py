"""The local decode processes (``--decode_processes``) write exactly the lake the single-process path writes.

The input is cut into many small byte ranges (``sources.files.beam.SPLIT_BYTES`` patched to a few KB, for both
paths, so dead-letter positions match) and batches of two lines: bad lines of every kind, duplicates in other
ranges and batches, escaped event types, many partitions, plus a gzipped file (decoded in the parent process).
A killed decode process fails the run with one line and publishes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sources.files.beam
from sources.files.pool import PEAKS_ENV
from sources.files.worker import KILL_AFTER_ENV
from tests.support.helpers import dead_letters, mixed_export, read_lake, run_pipeline

COUNTS = ("events read", "events written", "filtered out", "duplicates", "duplicates in run", "duplicates in lake",
          "dead letters", "rows written", "coerced")


def _run(tmp_path: Path, name: str, inputs: list[Path], *flags: str):
    lake = tmp_path / name
    # Batches of 2 lines: several batches per range, so a process merges batches (and their duplicates).
    run = run_pipeline("--source=file", *(f"--input={p}" for p in inputs), f"--output={lake}", "--batch_size=2",
                       *flags)
    return run, lake


def _dead(lake: Path) -> list[dict]:
    return sorted((({k: v for k, v in r.items() if k != "dead_lettered_at"}) for r in dead_letters(lake)),
                  key=lambda r: json.dumps(r, sort_keys=True))


def _partitions(lake: Path) -> list:
    manifest = json.loads(next((lake / "_runs").glob("*.json")).read_text())
    return sorted((p["partition"], p["rows"], p["events"]) for p in manifest["partitions"])


@pytest.fixture
def small_ranges(monkeypatch):
    monkeypatch.setattr(sources.files.beam, "SPLIT_BYTES", 8 * 1024)


def test_processes_write_the_same_lake_as_one_process(tmp_path, small_ranges, monkeypatch):
    inputs, escaped = mixed_export(tmp_path)
    used = []
    real_batches = sources.files.beam.decoded_batches

    def counted(ranges, settings, processes):
        for item in real_batches(ranges, settings, processes):
            used.append(processes)
            yield item

    monkeypatch.setattr(sources.files.beam, "decoded_batches", counted)
    one, one_lake = _run(tmp_path, "one", inputs, "--decode_processes=1")
    assert one.code == 0, one.stderr
    assert not used  # --decode_processes=1: the ordinary Beam graph
    for processes in (2, 3):
        peaks = tmp_path / f"peaks{processes}.txt"
        monkeypatch.setenv(PEAKS_ENV, str(peaks))  # the benchmark's hook: each process's peak RSS, in kB
        many, lake = _run(tmp_path, f"many{processes}", inputs, f"--decode_processes={processes}")
        assert many.code == 0, many.stderr
        assert len(peaks.read_text().split()) == processes
        assert all(10_000 < int(kb) < 10_000_000 for kb in peaks.read_text().split())
        assert used and set(used) == {processes}, "the decode processes were not used"
        used.clear()
        assert [many.count(c) for c in COUNTS] == [one.count(c) for c in COUNTS]
        assert "-> OK" in many.stdout
        assert read_lake(lake) == read_lake(one_lake)
        assert _dead(lake) == _dead(one_lake)
        assert _partitions(lake) == _partitions(one_lake)
    # The input has what the test claims: many partitions, dead letters of every stage, duplicates, escapes.
    assert len(_partitions(one_lake)) > 40
    assert one.count("duplicates in run") >= 15 and one.count("coerced") >= 1
    assert {r["stage"] for r in _dead(one_lake)} >= {"decode", "validate", "flatten"}
    assert any(r["event_type"] == "personal.a.b" for r in read_lake(one_lake))
    assert escaped and escaped <= {r["uuid"] for r in read_lake(one_lake)}  # kept though written "personal\u002e"
    assert one.count("events read") == sum(one.count(c) for c in ("events written", "filtered out", "duplicates",
                                                                  "dead letters"))


def test_a_killed_decode_process_fails_the_run_and_publishes_nothing(tmp_path, small_ranges, monkeypatch):
    inputs, _ = mixed_export(tmp_path)
    monkeypatch.setenv(KILL_AFTER_ENV, "2")
    run, lake = _run(tmp_path, "lake", inputs, "--decode_processes=2")
    assert run.code == 75, run.stderr  # retryable: killed by the OS (out of memory, say), a rerun may finish
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "DecodeProcessFailed: decode process" in errors[0] and "was killed by signal 9" in errors[0]
    assert errors[0].endswith("(retryable: rerun as is)")
    assert "nothing was committed" in errors[0]
    published = [p for p in lake.rglob("*") if p.is_file() and "_staging" not in p.parts
                 and not p.name.endswith(".failed.json")]
    assert published == []
    assert not (lake / "_dead_letter").exists() or not list((lake / "_dead_letter").rglob("*.jsonl"))
