"""Readers see committed data only, whatever happened to earlier runs (issue 12).

DuckDB (the query of the README and of docs/lake.md), Polars (the glob docs/lake.md shows, and a recursive one),
pyarrow's dataset and ``tools.report`` are asked after runs killed with
``kill -9`` at several points of the lake protocol (:mod:`tests.support.kill_points`),
and in a loop while a slowed run stages and commits. The staging leases: a live
run's folder survives another run's clean-up, a dead run's is removed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest

from sinks.lake import staging
from tests.support import kill_points
from tests.support.helpers import REPO, run_pipeline
from tools.report import report

# Where the reader calls are shown to users: the README (DuckDB) and the lake's page (every reader).
SHOWN_IN = [Path(REPO) / "README.md", Path(REPO) / "docs" / "lake.md"]


def shown_form(pattern: str) -> str:
    """The one reader call matching ``pattern`` the README and docs/lake.md show (the tests use its exact form)."""
    found = {form for page in SHOWN_IN for form in re.findall(pattern, page.read_text())}
    assert len(found) == 1, f"the README and docs/lake.md should show one form of {pattern!r}, show {found}"
    return found.pop()


DUCKDB_GLOB = shown_form(r"read_parquet\('lake/([^']+)', hive_partitioning=true\)")
POLARS_GLOB = shown_form(r'pl\.scan_parquet\("lake/([^"]+)", hive_partitioning=True\)')


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A small generated export over three days (six partitions), with re-sent events and bad lines."""
    path = tmp_path_factory.mktemp("export") / "export.jsonl"
    subprocess.run([sys.executable, "-m", "devtools.eventgen", "--events", "2400", "--output", str(path)], cwd=REPO,
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def reference(export, tmp_path_factory) -> Counter:
    """(uuid, target_index) of every row an undisturbed run commits."""
    lake = tmp_path_factory.mktemp("reference") / "lake"
    run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}")
    assert run.code == 0, run.stderr
    rows = pyarrow_rows(lake)
    assert sum(rows.values()) == run.count("rows written") and len(rows) == sum(rows.values())
    return rows


def keys(table) -> Counter:
    return Counter(zip(table["uuid"], table["target_index"]))


def duckdb_files(lake: Path) -> dict[str, int]:
    """Rows per file, by the DuckDB query the README shows ({} while no file matches)."""
    sql = (f"SELECT filename, count(*) FROM read_parquet('{lake}/{DUCKDB_GLOB}', hive_partitioning=true, "
           "filename=true) GROUP BY filename")
    if not list(lake.glob(DUCKDB_GLOB)):
        return {}
    return dict(duckdb.sql(sql).fetchall())


def duckdb_rows(lake: Path) -> Counter:
    sql = f"SELECT uuid, target_index FROM read_parquet('{lake}/{DUCKDB_GLOB}', hive_partitioning=true)"
    return Counter(duckdb.sql(sql).fetchall())


def polars_files(lake: Path, glob: str) -> dict[str, int]:
    frame = pl.scan_parquet(f"{lake}/{glob}", hive_partitioning=True, include_file_paths="path").collect()
    assert set(frame["event_type"]) <= {"personal.admin.configuration.update", "personal.user.app_migration.export"}
    return {path: n for path, n in Counter(frame["path"]).items()}


def polars_rows(lake: Path, glob: str) -> Counter:
    return keys(pl.scan_parquet(f"{lake}/{glob}", hive_partitioning=True).collect().to_dict(as_series=False))


def pyarrow_dataset(lake: Path) -> ds.Dataset:
    return ds.dataset(str(lake), format="parquet", partitioning="hive")


def pyarrow_rows(lake: Path) -> Counter:
    return keys(pyarrow_dataset(lake).to_table(columns=["uuid", "target_index"]).to_pydict())


def report_rows(lake: Path) -> int:
    """Total of the ``rows`` column of ``python -m tools.report``."""
    lines = report(str(lake)).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("okta_org "))
    rows = 0
    for line in lines[header + 1:]:
        if not line.strip():
            break
        rows += int(line.split()[3])  # okta_org, event_type, event_date, rows, ...
    return rows


def assert_every_reader_reads(lake: Path, want: Counter) -> None:
    assert pyarrow_rows(lake) == want
    assert duckdb_rows(lake) == want
    assert polars_rows(lake, POLARS_GLOB) == want
    assert polars_rows(lake, "**/*.parquet") == want
    assert report_rows(lake) == sum(want.values())


def start(point: str, marker: Path, export: Path, lake: Path, log: Path) -> subprocess.Popen:
    return kill_points.start(point, marker, log, "--source=file", f"--input={export}", f"--output={lake}")


def age(folder: Path, seconds: float) -> None:
    """Make a staging folder look untouched for ``seconds``, by the storage's clock and by its lease."""
    then = time.time() - seconds
    lease = folder / staging.LEASE_NAME
    if lease.exists():
        lease.write_text(json.dumps({**json.loads(lease.read_text()), "renewed_at": then}))
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (then, then))


@pytest.mark.parametrize("point", ["staging", "commit", "finish"])
def test_after_a_run_killed_mid_write_every_reader_reads_exactly_the_committed_rows(
        point, export, reference, tmp_path):
    lake, marker, log = tmp_path / "lake", tmp_path / "marker", tmp_path / "run.log"
    killed = start(point, marker, export, lake, log)
    try:
        kill_points.wait_for(marker, killed, log)
    finally:
        kill_points.kill(killed)
    [dead] = list((lake / staging.STAGING_DIR).iterdir())
    if point == "staging":  # a half-written Parquet file (no footer) is left behind
        # (the stager's two final writer threads may have other staged files open too)
        staged_files = [p.read_bytes() for p in dead.glob("*.parquet.staged")]
        assert any(data[:4] == b"PAR1" and data[-4:] != b"PAR1" for data in staged_files)
    if point in ("commit", "finish"):  # the killed run's own commits are readable already
        committed = pyarrow_rows(lake)
        assert committed and not set(committed) - set(reference)
        assert_every_reader_reads(lake, committed)

    good = run_pipeline("--source=file", f"--input={export}", f"--output={lake}")
    assert good.code == 0, good.stderr
    assert dead.exists(), "the killed run's staging is an hour from stale, so it is still there"
    assert_every_reader_reads(lake, reference)

    age(dead, staging.STALE_AFTER_SECONDS + 60)  # an hour later, the next run removes it
    later = run_pipeline("--source=file", f"--input={export}", f"--output={lake}")
    assert later.code == 0, later.stderr
    assert not dead.exists() and not (lake / staging.STAGING_DIR).exists()
    assert_every_reader_reads(lake, reference)


def test_readers_in_a_loop_during_a_run_only_ever_see_whole_committed_files(export, reference, tmp_path):
    """The slowed run renews its lease every 0.2 s; the loop also sweeps with a 1 s age limit, which
    its staged files pass while it waits 2 s before committing: only the lease keeps them."""
    lake, marker, log = tmp_path / "lake", tmp_path / "marker", tmp_path / "run.log"
    run = start("slow", marker, export, lake, log)
    seen: list[dict[str, int]] = []
    sweeps = 0
    try:
        while run.poll() is None:
            seen.append(duckdb_files(lake))
            if list(lake.glob("**/*.parquet")):
                seen.append(polars_files(lake, "**/*.parquet"))
                seen.append(polars_files(lake, POLARS_GLOB))
            dataset = pyarrow_dataset(lake) if lake.exists() else None
            if dataset is not None and dataset.files:
                table = dataset.to_table(columns=["uuid"])
                seen.append({"pyarrow": table.num_rows, **{f: -1 for f in dataset.files}})
            if marker.exists():
                assert staging.remove_stale(str(lake), stale_after=1.0) == []
                sweeps += 1
    finally:
        kill_points.kill(run)
    assert run.returncode == 0, log.read_text()[-3000:]
    assert_every_reader_reads(lake, reference)

    final = {str(path): n for path, n in duckdb_files(lake).items()}
    assert all(re.fullmatch(r".*/event_date=[^/]+/event_type=[^/]+/part-[^/]+\.parquet", f) for f in final)
    partial = 0
    for files in seen:
        total = files.pop("pyarrow", None)
        assert set(files) <= set(final), f"a reader saw files that are not committed: {set(files) - set(final)}"
        for name, rows in files.items():
            assert rows in (-1, final[name]), f"{name}: {rows} rows seen, {final[name]} committed"
        if total is not None:
            assert total == sum(final[name] for name in files)
        partial += 0 < len(files) < len(final)
    assert partial >= 3, f"the readers never saw a partly committed lake ({len(seen)} reads)"
    assert sweeps >= 3


def test_a_dead_runs_staging_is_removed_and_a_live_ones_is_kept(tmp_path):
    lake = tmp_path / "lake"
    dead, live, old_lease_only = (Path(staging.staging_dir(str(lake), name)) for name in ("dead", "live", "legacy"))
    for folder in (dead, live, old_lease_only):
        folder.mkdir(parents=True)
        (folder / "x.parquet.staged").write_bytes(b"PAR1 half")
        staging.write_lease(str(folder))
    (old_lease_only / staging.LEASE_NAME).unlink()  # a folder without a lease: its files' age decides
    for folder in (dead, live, old_lease_only):
        age(folder, 7200)
    staging.write_lease(str(live), now=time.time() - 7200)
    staging.write_lease(str(live))  # renewed just now: the files are old, the lease is not
    assert sorted(staging.remove_stale(str(lake))) == sorted([str(dead), str(old_lease_only)])
    assert live.exists() and not dead.exists() and not old_lease_only.exists()

    age(live, 7200)
    staging.hold(str(live), heartbeat=0.05)  # this process holds it: kept, and renewed
    try:
        assert staging.remove_stale(str(lake), stale_after=0.5) == []
        time.sleep(0.7)
        assert staging.remove_stale(str(lake), stale_after=0.5) == []
        assert time.time() - staging.read_lease(str(live))["renewed_at"] < 0.5
    finally:
        staging.release(str(live))
    renewed = staging.read_lease(str(live))["renewed_at"]
    time.sleep(0.2)
    assert staging.read_lease(str(live))["renewed_at"] == renewed, "a released lease is not renewed"


def test_a_lease_is_written_once_something_is_staged_and_stops_with_its_folder(tmp_path):
    folder = tmp_path / "lake" / staging.STAGING_DIR / "run"
    staging.hold(str(folder), heartbeat=0.05)
    try:
        time.sleep(0.2)
        assert not folder.exists(), "nothing staged yet: no lease, no folder"
        folder.mkdir(parents=True)
        (folder / "x.parquet.staged").write_bytes(b"PAR1")
        time.sleep(0.2)
        assert time.time() - staging.read_lease(str(folder))["renewed_at"] < 0.2
        import shutil

        shutil.rmtree(folder)  # the run removed its staging: the keeper stops, it writes nothing again
        time.sleep(0.3)
        assert not folder.exists() and str(folder) not in staging._KEEPERS
    finally:
        staging.release(str(folder))

    with staging.leased(str(folder)):
        folder.mkdir(parents=True)
        (folder / "x.parquet.staged").write_bytes(b"PAR1")
    assert not folder.exists() and not folder.parent.exists()
