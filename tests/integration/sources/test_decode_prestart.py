"""Decode processes started before Beam is imported (``pipeline.prestart``) change when the work starts, nothing else.

``python -m pipeline`` runs as a subprocess, as a user runs it, on a file cut into many small ranges
(``sources.files.ranges.SPLIT_BYTES_ENV``); the pools it starts are read from the range pool's log
(``sources.files.pool.POOL_LOG_ENV``): which were started early, adopted, discarded, with their pids.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import duckdb
import pytest

import sources.files.beam
from pipeline import prestart
from sources.files import pool as range_pool
from sources.files.pool import POOL_LOG_ENV, decode_settings, decoded_batches
from sources.files.ranges import SPLIT_BYTES_ENV, file_ranges
from sources.files.worker import KILL_AFTER_ENV
from tests.support.helpers import REPO, Run, dead_letters, mixed_export, read_lake, run_pipeline, write_jsonl

COUNTS = ("events read", "events written", "filtered out", "duplicates", "duplicates in run", "dead letters",
          "rows written", "coerced")
SPLIT = 8 * 1024


def _env(log: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (prestart.DISABLE_ENV, KILL_AFTER_ENV)}
    return {**env, "PYTHONPATH": str(REPO), SPLIT_BYTES_ENV: str(SPLIT), POOL_LOG_ENV: str(log), **extra}


def _pipeline(tmp_path: Path, name: str, *flags: str, **env: str) -> tuple[Run, Path, list[list[str]]]:
    """``python -m pipeline FLAGS --output=TMP/NAME`` in a subprocess; also its lake and its pool log lines."""
    lake, log = tmp_path / name, tmp_path / f"{name}.pools"
    done = subprocess.run([sys.executable, "-m", "pipeline", "--quiet", *flags, f"--output={lake}"], cwd=REPO,
                          env=_env(log, **env), capture_output=True, text=True, timeout=300)
    pools = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return Run(done.returncode, done.stdout, done.stderr), lake, pools


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _gone(pids: list[int], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _rows(lake: Path) -> list[tuple]:
    """Every lake row as DuckDB reads it (partition columns included), sorted."""
    query = (f"SELECT * FROM read_parquet('{lake}/*/*/*.parquet', hive_partitioning=true) "
             "ORDER BY ALL")
    return duckdb.sql(query).fetchall()


def _dead(lake: Path) -> list[str]:
    return sorted(json.dumps({k: v for k, v in r.items() if k != "dead_lettered_at"}, sort_keys=True)
                  for r in dead_letters(lake))


@pytest.fixture
def export(tmp_path) -> Path:
    main, _gz = mixed_export(tmp_path)[0]
    assert main.stat().st_size > 20 * SPLIT  # many ranges
    return main


def test_a_prestarted_pool_is_adopted_and_writes_the_same_lake(tmp_path, export):
    flags = ("--source=file", f"--input={export}", "--batch_size=2", "--decode_processes=2")
    early, early_lake, early_pools = _pipeline(tmp_path, "early", *flags)
    late, late_lake, late_pools = _pipeline(tmp_path, "late", *flags, **{prestart.DISABLE_ENV: "1"})
    assert early.code == 0 and late.code == 0, early.stderr + late.stderr
    # Adopted: started before Beam, then used; no other pool was started.
    assert [p[0] for p in early_pools] == ["prestart", "adopt"] and len(early_pools[0]) == 3
    assert [p[0] for p in late_pools] == ["start"] and len(late_pools[0]) == 3
    assert _gone([int(pid) for pid in early_pools[0][1:]])
    assert [early.count(c) for c in COUNTS] == [late.count(c) for c in COUNTS]
    assert early.count("events written") > 50 and early.count("dead letters") > 5
    assert _rows(early_lake) == _rows(late_lake) and len(_rows(early_lake)) == early.count("rows written")
    assert _dead(early_lake) == _dead(late_lake)
    assert early.stderr == late.stderr == ""


def test_a_killed_prestarted_process_fails_the_run_as_before(tmp_path, export):
    run, lake, pools = _pipeline(tmp_path, "lake", "--source=file", f"--input={export}", "--batch_size=2",
                                 "--decode_processes=2", **{KILL_AFTER_ENV: "2"})
    assert [p[0] for p in pools] == ["prestart", "adopt"]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.code == 1 and len(errors) == 1, run.stderr
    assert "DecodeProcessFailed: decode process" in errors[0] and "was killed by signal 9" in errors[0]
    assert "nothing was committed" in errors[0]
    assert not [p for p in lake.rglob("*.parquet") if "_staging" not in p.parts]


@pytest.mark.parametrize("flags", [("--batch_size=0",), ("--output_typo=x",), ("--help",)],
                         ids=["bad-value", "unknown-flag", "help"])
def test_a_run_that_stops_at_its_options_leaves_no_decode_process(tmp_path, export, flags):
    run, _lake, pools = _pipeline(tmp_path, "lake", "--source=file", f"--input={export}", "--decode_processes=2",
                                  *flags)
    assert run.code in (0, 2), run.stderr
    if flags == ("--batch_size=0",):  # parses, so decoding started; the run refuses it: the pool is killed
        assert [p[0] for p in pools] == ["prestart", "discard"]
        assert "--batch_size must be between 1 and 100000" in run.stderr
    else:  # not sure of these: nothing started
        assert pools == []
    assert _gone([int(pid) for line in pools for pid in line[1:]], timeout=0)


def test_a_flag_the_pre_parse_does_not_read_means_no_early_start(tmp_path, export):
    run, _lake, pools = _pipeline(tmp_path, "lake", "--source=file", f"--input={export}", "--decode_processes=2",
                                  "--runner=DirectRunner")
    assert run.code == 0, run.stderr
    assert [p[0] for p in pools] == ["start"]  # the run's own pool, started when the graph ran


def test_workers_of_a_killed_parent_exit(tmp_path):
    """SIGKILL leaves no atexit: the workers see their pipes close and end on their own."""
    lines = [json.dumps({"uuid": f"u{i}", "eventType": "user.session.start", "published": "2026-11-01T00:00:00Z",
                         "pad": "x" * 200}) for i in range(40_000)]
    big = write_jsonl(tmp_path / "big.jsonl", lines)
    log = tmp_path / "pools"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--quiet", "--source=file", f"--input={big}",
                             f"--output={tmp_path / 'lake'}", "--decode_processes=2"], cwd=REPO,
                            env=_env(log), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        pids = [int(pid) for pid in log.read_text().split()[1:]]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _gone(pids)


def test_a_wrong_guess_is_discarded_and_a_fresh_pool_used(tmp_path, export, monkeypatch):
    """The pre-parse saw other settings (here: another --batch_size) than the run uses: its pool is killed."""
    log = tmp_path / "pools"
    monkeypatch.setenv(POOL_LOG_ENV, str(log))
    monkeypatch.delenv(prestart.DISABLE_ENV, raising=False)
    monkeypatch.setattr(sources.files.beam, "SPLIT_BYTES", SPLIT)
    monkeypatch.setattr(prestart, "SPLIT_BYTES", SPLIT)
    flags = ["--source=file", f"--input={export}", "--decode_processes=2", "--batch_size=2"]
    prestart.start([*flags[:-1], "--batch_size=3"])
    guessed = log.read_text().split()
    assert guessed[0] == "prestart"
    run = run_pipeline(*flags, f"--output={tmp_path / 'lake'}")
    assert run.code == 0, run.stderr
    pools = [line.split() for line in log.read_text().splitlines()]
    assert [p[0] for p in pools] == ["prestart", "discard", "start"]
    assert _gone([int(pid) for pid in guessed[1:]], timeout=0)  # killed and reaped before the fresh pool
    log.unlink()
    monkeypatch.setenv(prestart.DISABLE_ENV, "1")
    plain = run_pipeline(*flags, f"--output={tmp_path / 'plain'}")
    assert [p.split()[0] for p in log.read_text().splitlines()] == ["start"]
    assert [run.count(c) for c in COUNTS] == [plain.count(c) for c in COUNTS]
    assert read_lake(tmp_path / "lake") == read_lake(tmp_path / "plain")


def test_an_adopted_pool_buffered_what_was_decoded_before_anyone_consumed(tmp_path, export, monkeypatch):
    """Until the run consumes, the pool's processes are not held to two messages each: they run ahead."""
    log = tmp_path / "pools"
    monkeypatch.setenv(POOL_LOG_ENV, str(log))
    settings = decode_settings("personal.*", True, 16 * 1024 * 1024, None, 2, 8 * 1024 * 1024)
    ranges = list(file_ranges(str(export), export.stat().st_size, SPLIT, False, partial(open, export, "rb")))
    assert len(ranges) > 10
    range_pool.prestart(ranges, settings, 2)
    assert _gone([int(pid) for pid in log.read_text().split()[1:]])  # all decoded and buffered, nobody reading
    early = list(decoded_batches(ranges, settings, 2))
    fresh = list(decoded_batches(ranges, settings, 2))
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["prestart", "adopt", "start"]
    assert sum(b[0][0] for b in early) == sum(b[0][0] for b in fresh) > 200
    assert len(early) == len(fresh) > 2 * 2  # more messages than a consumed pool may hold
