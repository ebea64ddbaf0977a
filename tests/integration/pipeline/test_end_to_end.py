"""The user's story: an export goes in through the CLI, a lake any engine can read comes out."""

import json
import subprocess
import sys

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from bench.plain_pyarrow import run as plain_run
from devtools.eventgen import export_lines
from schemas.arrow import FILE_SCHEMA
from tests.support import reference
from tests.support.helpers import REPO, dead_letters, read_lake, real_events, run_pipeline, write_jsonl


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 25k-event export with re-sent events and bad lines, and its lake, run once."""
    root = tmp_path_factory.mktemp("generated")
    export = root / "export.jsonl"
    export.write_bytes(b"".join(line + b"\n" for line in export_lines(25_000, seed=11)))
    lake = root / "lake"
    run = run_pipeline(f"--input={export}", f"--output={lake}", "--run_id=first")
    assert run.code == 0, run.stderr
    return export, lake, run


def test_cli_writes_a_lake_that_pyarrow_and_duckdb_read(tmp_path):
    events = [dict(e, eventType=("personal.admin.configuration.update", "personal.user.app_migration.export")[i % 2],
                   uuid=f"cli-{i}") for i, e in enumerate(real_events())]
    export = write_jsonl(tmp_path / "in" / "events.jsonl.gz", events, gz=True)
    lake = tmp_path / "lake"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--source=file", f"--input={export}",
                           f"--output={lake}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "-> OK" in proc.stdout

    expected = []
    for event in events:
        try:
            expected += reference.expected_rows(event)
        except reference.Reject:
            pass
    assert expected

    table = ds.dataset(str(lake), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(expected)
    assert table.schema.field("published").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("security_context_is_proxy").type == pa.bool_()
    assert table.schema.field("target_index").type == pa.int32()

    con = duckdb.connect()
    glob = f"{lake}/event_date=*/event_type=*/*.parquet"  # the README's form
    kinds = {name: kind for name, kind, *_ in con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning=true)").fetchall()}
    assert kinds["published"] == "TIMESTAMP WITH TIME ZONE"
    assert kinds["event_date"] == "DATE"
    assert kinds["security_context_is_proxy"] == "BOOLEAN"
    got = con.execute(f"""
        SELECT uuid, target_index, strftime(published AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f'),
               CAST(event_date AS VARCHAR), event_type, actor_alternate_id, target_id,
               security_context_is_proxy
        FROM read_parquet('{glob}', hive_partitioning=true)
        ORDER BY uuid, target_index NULLS FIRST""").fetchall()
    want = sorted(
        ((r["uuid"], r["target_index"], r["published"].strftime("%Y-%m-%dT%H:%M:%S.%f"), r["event_date"],
          r["event_type"], r["actor_alternate_id"], r["target_id"], r["security_context_is_proxy"])
         for r in expected),
        key=lambda r: (r[0], -1 if r[1] is None else r[1]))
    assert got == want


def test_files_are_standard_parquet(generated):
    _, lake, _ = generated
    files = sorted(lake.glob("event_date=*/event_type=*/*.parquet"))
    assert files
    for path in files:
        meta = pq.ParquetFile(path).metadata
        schema = pq.ParquetFile(path).schema_arrow
        assert schema.names == FILE_SCHEMA.names  # partition keys are not inside the files
        column = meta.row_group(0).column(1)
        assert column.compression == "ZSTD"
        physical = meta.schema.column(1).physical_type
        assert physical == "INT64"  # not INT96
        logical = str(meta.schema.column(1).logical_type)
        assert "Timestamp" in logical and "isAdjustedToUTC=true" in logical and "microseconds" in logical


def test_every_event_is_accounted_for(generated):
    export, lake, run = generated
    lines = [line_ for line_ in export.read_bytes().splitlines() if line_.strip()]
    read = run.count("events read")
    assert read == len(lines)  # every line is one event or one bad line here
    assert read == (run.count("events written") + run.count("filtered out")
                    + run.count("duplicates") + run.count("dead letters"))
    assert "-> OK" in run.stdout
    assert read >= 25_000
    assert run.count("duplicates") > 10 and run.count("dead letters") > 5  # re-sent personal events, bad lines
    assert len(dead_letters(lake)) == run.count("dead letters")
    rows = read_lake(lake)
    assert len(rows) == run.count("rows written")
    assert len({(r["event_date"], r["event_type"], r["uuid"]) for r in rows}) == run.count("events written")


def test_lake_equals_the_plain_implementation(generated, tmp_path):
    export, lake, run = generated
    counts = plain_run(str(export), str(tmp_path / "plain"))
    assert counts["read"] == run.count("events read")
    assert counts["kept"] == run.count("events written")
    assert counts["filtered"] == run.count("filtered out")
    assert counts["duplicates"] == run.count("duplicates")
    assert counts["dead"] == run.count("dead letters")
    assert read_lake(lake) == read_lake(tmp_path / "plain")


def test_same_input_twice_leaves_the_same_rows(generated):
    export, lake, first = generated
    before = read_lake(lake)
    again = run_pipeline(f"--input={export}", f"--output={lake}", "--run_id=second")
    assert again.code == 0
    assert again.count("events written") == 0
    assert again.count("rows written") == 0
    assert again.count("duplicates") == first.count("events written") + first.count("duplicates")
    assert "-> OK" in again.stdout
    assert read_lake(lake) == before
    manifest = json.loads((lake / "_runs" / "second.json").read_text())
    assert all(p["files"] == [] for p in manifest["partitions"])
    assert not (lake / "_staging").exists()


def test_overlapping_input_adds_only_new_events(tmp_path):
    lines = list(export_lines(3000, seed=5, duplicate_rate=0, bad_line_rate=0))
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"\n".join(lines[:2000]) + b"\n")
    second.write_bytes(b"\n".join(lines[1000:]) + b"\n")
    lake = tmp_path / "lake"
    assert run_pipeline(f"--input={first}", f"--output={lake}").code == 0
    assert run_pipeline(f"--input={second}", f"--output={lake}").code == 0
    both = tmp_path / "both"
    assert run_pipeline(f"--input={tmp_path}/*.jsonl", f"--output={both}").code == 0
    once = tmp_path / "once.jsonl"
    once.write_bytes(b"\n".join(lines) + b"\n")
    clean = tmp_path / "clean"
    assert run_pipeline(f"--input={once}", f"--output={clean}").code == 0
    assert read_lake(lake) == read_lake(clean) == read_lake(both)
