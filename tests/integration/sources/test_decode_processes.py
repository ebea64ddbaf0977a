"""The local decode processes (``--decode_processes``) write exactly the lake the single-process path writes.

The runs are in this process, so the split size (``sources.files.beam.SPLIT_BYTES``, what
``ExportedFilesToRows`` cuts files by) is set small for them. The input is cut into many byte ranges of a few KB
(for both paths, so dead-letter positions match) and batches of two lines: bad lines of every kind, duplicates in
other ranges and batches, escaped event types, many partitions, plus a gzipped file (decoded in the parent
process). A decode process killed from outside in the middle of a range fails the run with one line and
publishes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import sources.files.beam
from devtools.eventgen import export_lines
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
        many, lake = _run(tmp_path, f"many{processes}", inputs, f"--decode_processes={processes}")
        assert many.code == 0, many.stderr
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


def decode_processes_of(pid: int) -> list[int]:
    """The pids of the decode processes (``python -m sources.files.worker``) among the children of ``pid``."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:  # it ended meanwhile
                continue
            if b"sources.files.worker" in argv:
                found.append(int(child))
    return found


def reads(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def stop(pid: int) -> bool:
    """Stop process ``pid`` (SIGSTOP) and wait until it is stopped; False if it is gone."""
    try:
        os.kill(pid, signal.SIGSTOP)
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            time.sleep(0.0001)
    except (ProcessLookupError, FileNotFoundError):
        return False
    return True


class KillerOfADecodeProcess(threading.Thread):
    """Watches this process's children and SIGKILLs the first decode process caught with ``path`` open: in the
    middle of a range (it is stopped while looked at, so it cannot close the file or end in between)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.killed, self.done = path, None, threading.Event()

    def run(self):
        while self.killed is None and not self.done.is_set():
            for pid in decode_processes_of(os.getpid()):
                if not stop(pid):
                    continue
                try:
                    if reads(pid, self.path):
                        os.kill(pid, signal.SIGKILL)
                        self.killed = pid
                        break
                finally:
                    if self.killed != pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGCONT)
            time.sleep(0.001)


def test_a_decode_process_killed_mid_range_fails_the_run_and_publishes_nothing(tmp_path, monkeypatch):
    export = tmp_path / "in" / "export.jsonl"
    export.parent.mkdir()
    export.write_bytes(b"".join(line + b"\n" for line in export_lines(12_000, seed=11)))
    monkeypatch.setattr(sources.files.beam, "SPLIT_BYTES", 1024 * 1024)  # ~20 ranges, each read for a while
    lake = tmp_path / "lake"
    killer = KillerOfADecodeProcess(export)
    killer.start()
    try:
        run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}", "--decode_processes=2",
                           "--batch_size=20")
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed, "no decode process was seen reading the export (the run ended first)"
    assert run.code == 75, run.stderr  # retryable: killed by the OS (out of memory, say), a rerun may finish
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    assert "DecodeProcessFailed: decode process" in errors[0]
    assert errors[0].endswith("(retryable: rerun as is)")
    assert f"(pid {killer.killed}) was killed by signal 9 while reading {export} bytes" in errors[0]
    assert "nothing was committed" in errors[0]
    published = [p for p in lake.rglob("*") if p.is_file() and "_staging" not in p.parts
                 and not p.name.endswith(".failed.json")]
    assert published == []
    assert not (lake / "_dead_letter").exists() or not list((lake / "_dead_letter").rglob("*.jsonl"))
    assert decode_processes_of(os.getpid()) == []  # the other one was stopped too
