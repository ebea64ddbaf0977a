"""The lake's write protocol: bounded staging, then insert-if-absent commits per partition."""

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.arrow import file_schema
from sinks.lake.commit import commit_partition, final_name
from sinks.lake.dead_letters import DeadLetterStager, commit_dead_letters
from sinks.lake.stage import PartitionStager
from storage import fs
from tests.support.flatten import table_of
from transforms.records import PartitionKey

KEY = PartitionKey("2026-03-01", "personal.user.app_migration.export")


def stage(tmp_path, *tables, **kwargs):
    stager = PartitionStager(str(tmp_path / "_staging" / "run"), file_schema(), **kwargs)
    dups = sum(stager.add(KEY, t) for t in tables)
    return stager.close(), dups


def test_stager_writes_one_file_per_partition_and_drops_repeats(tmp_path):
    staged, dups = stage(tmp_path, table_of(["a", "b"], targets=2), table_of(["b", "c"], targets=2))
    assert dups == 1
    assert len(staged) == 1
    table = pq.read_table(staged[0].path)
    assert sorted(set(table.column("uuid").to_pylist())) == ["a", "b", "c"]
    assert table.num_rows == staged[0].rows == 6
    assert staged[0].events == 3


def test_stager_rolls_files_and_flushes_under_memory_pressure(tmp_path):
    tables = [table_of([f"e{i}-{j}" for j in range(50)]) for i in range(10)]
    staged, _ = stage(tmp_path, *tables, row_group_bytes=1, max_buffer_bytes=1, max_file_rows=120)
    assert sum(s.rows for s in staged) == 500
    assert all(s.rows <= 150 for s in staged)
    assert len(staged) == 4


def test_commit_moves_files_and_skips_uuids_already_in_the_lake(tmp_path):
    lake = str(tmp_path / "lake")
    staged, _ = stage(tmp_path, table_of(["a", "b"], targets=2))
    first = commit_partition(lake, KEY, staged, "run1")
    assert (first.events, first.rows, first.duplicates_in_lake) == (2, 4, 0)
    assert not os.path.exists(staged[0].path)
    assert os.listdir(os.path.join(lake, KEY.path())) == [final_name("run1", staged[0].path)]

    staged2, _ = stage(tmp_path, table_of(["b", "c"], targets=2))
    second = commit_partition(lake, KEY, staged2, "run2")
    assert (second.events, second.rows, second.duplicates_in_lake) == (1, 2, 1)
    rows = pq.read_table(os.path.join(lake, KEY.path())).column("uuid").to_pylist()
    assert sorted(rows) == ["a", "a", "b", "b", "c", "c"]

    staged3, _ = stage(tmp_path, table_of(["a", "c"]))
    third = commit_partition(lake, KEY, staged3, "run3")
    assert (third.events, third.files, third.duplicates_in_lake) == (0, [], 2)


def test_commit_across_two_staged_files_of_one_run(tmp_path):
    lake = str(tmp_path / "lake")
    one, _ = stage(tmp_path, table_of(["a", "b"]))
    two, _ = stage(tmp_path, table_of(["b", "c"]))
    result = commit_partition(lake, KEY, one + two, "run")
    assert (result.events, result.duplicates_in_run, len(result.files)) == (3, 1, 2)


def test_commit_run_again_after_a_crash_counts_but_does_not_duplicate(tmp_path):
    lake = str(tmp_path / "lake")
    staged, _ = stage(tmp_path, table_of(["a", "b"]))
    commit_partition(lake, KEY, staged, "run")
    again = commit_partition(lake, KEY, staged, "run")  # a retried bundle
    assert (again.events, again.rows, again.duplicates_in_lake) == (2, 2, 0)
    assert len(os.listdir(os.path.join(lake, KEY.path()))) == 1


def test_a_retried_commit_counts_duplicates_and_all_duplicate_files_as_the_first_did(tmp_path):
    lake = str(tmp_path / "lake")
    earlier, _ = stage(tmp_path, table_of(["a", "b"], targets=2))
    commit_partition(lake, KEY, earlier, "run0")
    clean, _ = stage(tmp_path, table_of(["c"], targets=2))
    some_dups, _ = stage(tmp_path, table_of(["b", "d"], targets=2))
    all_dups, _ = stage(tmp_path, table_of(["a", "c"], targets=2))
    staged = clean + some_dups + all_dups
    first = commit_partition(lake, KEY, staged, "run")  # the bundle then fails and Beam retries it
    again = commit_partition(lake, KEY, staged, "run")
    assert first == again
    assert (first.events, first.rows, first.duplicates_in_lake, first.duplicates_in_run) == (2, 4, 2, 1)
    rows = pq.read_table(os.path.join(lake, KEY.path())).column("uuid").to_pylist()
    assert sorted(rows) == ["a", "a", "b", "b", "c", "c", "d", "d"]


def test_commit_refuses_a_lost_staged_file(tmp_path):
    staged, _ = stage(tmp_path, table_of(["a"]))
    os.remove(staged[0].path)
    with pytest.raises(IOError, match="missing and was never committed"):
        commit_partition(str(tmp_path / "lake"), KEY, staged, "run")


def test_commit_refuses_a_foreign_file_in_a_partition(tmp_path):
    lake = tmp_path / "lake"
    folder = lake / KEY.path()
    folder.mkdir(parents=True)
    (folder / "not-ours.parquet").write_bytes(b"PAR1 garbage")
    staged, _ = stage(tmp_path, table_of(["a"]))
    with pytest.raises(IOError, match="cannot read the uuid column"):
        commit_partition(str(lake), KEY, staged, "run")


def test_dead_letters_are_staged_then_committed_once(tmp_path):
    stager = DeadLetterStager(str(tmp_path / "_staging" / "run"))
    for i in range(3):
        stager.add({"error": "bad", "stage": "decode", "payload": f"line {i}"})
    [staged] = stager.close()
    final = commit_dead_letters(str(tmp_path / "dlq"), staged, "run")
    assert commit_dead_letters(str(tmp_path / "dlq"), staged, "run") == final  # idempotent
    assert len(fs.read_bytes(final).splitlines()) == 3


def _stage_batches(tmp_path, name, batches, **kwargs):
    """Decode, flatten and stage each batch of lines; the staged rows read back, per partition."""
    from transforms.decode import decode_batch
    from transforms.flatten import Flattener
    from transforms.records import RawBatch

    flattener = Flattener()
    stager = PartitionStager(str(tmp_path / name), file_schema(), **kwargs)
    for lines in batches:
        decoded = decode_batch(RawBatch("t", "line", list(range(len(lines))), lines),
                               prepare=flattener.prepare)
        for key, table in flattener.flatten(decoded.events).tables.items():
            stager.add(key, table)
    out = {}
    for staged in stager.close():
        table = pq.read_table(staged.path)
        assert table.num_rows == staged.rows
        rows = sorted(table.to_pylist(), key=lambda r: (r["uuid"], r["target_index"] or 0))
        out.setdefault(staged.partition, []).extend(rows)
    return {key: sorted(rows, key=lambda r: (r["uuid"], r["target_index"] or 0)) for key, rows in out.items()}


@pytest.mark.parametrize("budget", [256 * 1024, 64 * 1024 * 1024])
def test_a_many_partition_batch_writes_the_same_rows_as_one_partition_batches(tmp_path, budget):
    from devtools.eventgen import export_lines

    lines = list(export_lines(1500, seed=21, duplicate_rate=0.02, bad_line_rate=0.01,
                              published_sorted=False, start="2026-03-01T00:00:00Z", end="2026-03-15T00:00:00Z",
                              types=30, personal_share=0.5))
    # One batch of everything: ~50 partitions in one batch (one table, many slices).
    many = _stage_batches(tmp_path, "many", [lines[i:i + 1000] for i in range(0, len(lines), 1000)],
                          max_buffer_bytes=budget)
    # The same lines, regrouped so each batch holds one partition only (first copies first).
    by_partition: dict = {}
    for raw in lines:
        try:
            event = json.loads(raw)
            key = (event["published"][:10], event["eventType"])
        except (ValueError, KeyError, TypeError):
            continue
        by_partition.setdefault(key, []).append(raw)
    one = _stage_batches(tmp_path, "one", list(by_partition.values()), max_buffer_bytes=budget)
    assert len(many) > 40
    assert many == one
    assert sum(len(r) for r in many.values()) > 1000


def test_small_pieces_are_spilled_then_written_as_one_row_group(tmp_path):
    tables = [table_of([f"e{i}-{j}" for j in range(20)]) for i in range(12)]
    staged, _ = stage(tmp_path, *tables, max_buffer_bytes=1)  # a flush per table, each piece small
    assert len(staged) == 1 and staged[0].rows == staged[0].events == 240
    meta = pq.ParquetFile(staged[0].path).metadata
    assert meta.num_row_groups == 1
    assert sorted(pq.read_table(staged[0].path).column("uuid").to_pylist()) == sorted(
        f"e{i}-{j}" for i in range(12) for j in range(20))
    assert not [p for p in os.listdir(tmp_path / "_staging" / "run") if not p.endswith(".parquet.staged")]


ORG_SCHEMA = file_schema(raw_event=False)
ORG_KEY = PartitionKey("2026-11-01", "personal.x")


def rows(uuids, orgs, targets=1):
    """Rows of ``ORG_SCHEMA``: each uuid ``targets`` times, with its org (None: unknown)."""
    columns = {f.name: [None] * (len(uuids) * targets) for f in ORG_SCHEMA}
    columns["uuid"] = [u for u in uuids for _ in range(targets)]
    columns["published"] = [0] * len(columns["uuid"])
    columns["okta_org"] = [o for o in orgs for _ in range(targets)]
    return pa.Table.from_pydict(columns, schema=ORG_SCHEMA)


def test_a_commit_counts_each_org_of_mixed_and_one_org_files(tmp_path):
    """commit_partition's by_org: one-org files (the usual case) and a file mixing orgs, with duplicates."""
    schema, key = ORG_SCHEMA, ORG_KEY

    lake = str(tmp_path / "lake")
    first = PartitionStager(str(tmp_path / "s1"), schema)
    first.add(key, rows(["a1", "a2"], ["a.okta.com"] * 2, targets=2))
    result = commit_partition(lake, key, first.close(), "run1")
    assert result.by_org == {"a.okta.com": {"rows": 4, "events": 2, "duplicates_in_run": 0, "duplicates_in_lake": 0,
                                            "withheld": 0}}

    second = PartitionStager(str(tmp_path / "s2"), schema)
    second.add(key, rows(["a2", "b1", "b2", "c1"], ["a.okta.com", "b.okta.com", "b.okta.com", None]))
    result = commit_partition(lake, key, second.close(), "run2")
    assert result.by_org == {"a.okta.com": {"rows": 0, "events": 0, "duplicates_in_run": 0, "duplicates_in_lake": 1,
                                            "withheld": 0},
                             "b.okta.com": {"rows": 2, "events": 2, "duplicates_in_run": 0, "duplicates_in_lake": 0,
                                            "withheld": 0}}
    assert result.events == 3 and result.duplicates_in_lake == 1  # c1 (no org) counts in the totals only


def test_a_commit_withholds_every_row_of_a_failed_org_and_a_retry_counts_the_same(tmp_path):
    """withheld_orgs: a failed org's rows never reach the lake, from one-org and mixed files; the rest commit."""
    schema, key = ORG_SCHEMA, ORG_KEY

    lake = tmp_path / "lake"
    one_org = PartitionStager(str(tmp_path / "s1"), schema)  # only the failed org's rows
    one_org.add(key, rows(["b1", "b2"], ["b.okta.com"] * 2, targets=2))
    mixed = PartitionStager(str(tmp_path / "s2"), schema)
    mixed.add(key, rows(["a1", "b3", "a2", "a3"], ["a.okta.com", "b.okta.com", "a.okta.com", "a.okta.com"],
                        targets=2))
    healthy = PartitionStager(str(tmp_path / "s3"), schema)
    healthy.add(key, rows(["a4"], ["a.okta.com"]))
    staged = one_org.close() + mixed.close() + healthy.close()
    failed = frozenset({"b.okta.com"})

    def commit():
        return commit_partition(str(lake), key, staged, "run", withheld_orgs=failed)

    result = commit()
    committed = pq.read_table(lake / key.path()).to_pydict()
    assert sorted(set(committed["uuid"])) == ["a1", "a2", "a3", "a4"]
    assert set(committed["okta_org"]) == {"a.okta.com"}
    assert (result.events, result.rows, result.withheld) == (4, 7, 3)
    assert result.by_org == {"a.okta.com": {"rows": 7, "events": 4, "duplicates_in_run": 0, "duplicates_in_lake": 0,
                                            "withheld": 0},
                             "b.okta.com": {"rows": 0, "events": 0, "duplicates_in_run": 0, "duplicates_in_lake": 0,
                                            "withheld": 3}}
    assert len(result.files) == 2  # the mixed file (rewritten without b) and the healthy one
    # The files that held withheld rows stay staged (the run removes its staging folder), so a retried
    # commit (a bundle retried after a crash) counts and writes exactly the same.
    assert all(os.path.exists(s.path) for s in staged[:2]) and not os.path.exists(staged[2].path)
    again = commit()
    assert (again.events, again.rows, again.withheld, again.by_org) == (4, 7, 3, result.by_org)
    assert sorted(pq.read_table(lake / key.path()).column("uuid").to_pylist()) == sorted(committed["uuid"])

    # The next run (the org healed) commits the failed org's events once.
    rerun = PartitionStager(str(tmp_path / "s4"), schema)
    rerun.add(key, rows(["b1", "b2", "b3", "a1"], ["b.okta.com"] * 3 + ["a.okta.com"], targets=2))
    result = commit_partition(str(lake), key, rerun.close(), "rerun")
    assert (result.events, result.duplicates_in_lake, result.withheld) == (3, 1, 0)
    assert sorted(set(pq.read_table(lake / key.path()).column("uuid").to_pylist())) == [
        "a1", "a2", "a3", "a4", "b1", "b2", "b3"]


@pytest.mark.parametrize("known", [500_000, 1])
def test_a_process_that_commits_often_still_sees_files_replaced_under_new_names(tmp_path, monkeypatch, known):
    # The commit remembers the uuids of files it read (a stream commits a partition every few seconds); a
    # compaction replaces files by new ones, and a small memory (known=1) reads evicted files again.
    from sinks.lake import commit as lake_commit

    monkeypatch.setattr(lake_commit, "MAX_KNOWN_UUIDS", known)
    lake = str(tmp_path / "lake")
    for run, uuids in (("run1", ["a", "b"]), ("run2", ["c"])):
        staged, _ = stage(tmp_path, table_of(uuids))
        commit_partition(lake, KEY, staged, run)
    partition = os.path.join(lake, KEY.path())
    merged = pq.read_table(partition)
    for name in os.listdir(partition):
        os.remove(os.path.join(partition, name))
    pq.write_table(merged, os.path.join(partition, "part-compacted-000.parquet"))

    staged, _ = stage(tmp_path, table_of(["a", "c", "d"]))
    result = commit_partition(lake, KEY, staged, "run3")
    assert (result.events, result.duplicates_in_lake) == (1, 2)
    staged, _ = stage(tmp_path, table_of(["b", "d", "e"]))
    result = commit_partition(lake, KEY, staged, "run4")
    assert (result.events, result.duplicates_in_lake) == (1, 2)
    assert sorted(pq.read_table(partition).column("uuid").to_pylist()) == ["a", "b", "c", "d", "e"]
