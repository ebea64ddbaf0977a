"""BigQuery output against bqemulator: table creation, batch MERGE loads, reruns, streaming inserts.

What the emulator cannot show (it answers a bad streamed row with HTTP 500 instead of a per-row error, and
does not dedupe insert ids) is tested at the boundary with a recording client: per-row errors become dead
letters, and every row carries ``insertId = uuid:target_index``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from schemas.bigquery import BIGQUERY_JSON, render
from sinks.bigquery.client import stream_files
from sinks.bigquery.settings import BigQueryTarget
from tests.support.helpers import run_pipeline, write_jsonl
from tests.support.okta import TOKEN, expected_row_keys, make_events, personal
from tests.support.reference import expected_rows

STEP = dt.timedelta(seconds=1)


def test_committed_bigquery_schema_is_generated_from_the_field_list():
    assert BIGQUERY_JSON.read_text() == render(), "schemas/bigquery.json is stale: python -m schemas.bigquery"


@pytest.fixture
def table(bigquery_emulator, request):
    name = "events_" + request.node.name.split("[")[0][-30:].replace("-", "_")
    spec = f"okta-lake-test:okta.{name}"
    return spec, BigQueryTarget(spec, True, bigquery_emulator)


def bq_rows(target: BigQueryTarget) -> list[dict]:
    client = target.client()
    return [dict(r.items()) for r in client.query(f"SELECT * FROM `{target.table_id}`").result()]


def test_batch_runs_create_the_table_and_merge_without_duplicates(table, bigquery_emulator, tmp_path):
    spec, target = table
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(400, start, dt.timedelta(minutes=5))  # spans three days
    first, second = events[:250], events[150:]  # overlapping backfills
    lake = tmp_path / "lake"
    for part, name in ((first, "a"), (second, "b"), (events, "c")):
        export = write_jsonl(tmp_path / f"{name}.jsonl", part)
        run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}", f"--bigquery_table={spec}",
                           f"--bigquery_endpoint={bigquery_emulator}")
        assert run.code == 0, run.stderr
    rows = bq_rows(target)
    keys = Counter((r["uuid"], r["target_index"]) for r in rows)
    assert keys == expected_row_keys(events)  # every row once, after three overlapping runs
    want = {(r["uuid"], r["target_index"]): r for e in personal(events) for r in expected_rows(e)}
    for row in rows:
        expected = want[(row["uuid"], row["target_index"])]
        for column in ("published", "actor_id", "target_id", "client_ip_address", "event_type"):
            assert row[column] == expected[column], column
        assert row["event_date"].isoformat() == expected["event_date"]
        assert json.loads(row["raw_event"])["uuid"] == row["uuid"]
    created = target.client().get_table(target.table_id)
    assert created.time_partitioning.field == "published" and created.clustering_fields == ["event_type", "actor_id"]
    assert all(field.description for field in created.schema)
    assert "bigquery:" in run.stdout and run.count("rows_inserted") == 0  # the last run added nothing new


def test_streaming_tail_inserts_each_committed_window(table, bigquery_emulator, okta_server, tmp_path):
    import os
    import subprocess
    import sys
    import time

    from tests.support.helpers import REPO

    spec, target = table
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    events = make_events(200, start, STEP)
    server = okta_server(events)
    log = tmp_path / "tail.log"
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "--streaming", "--source=okta",
                            f"--okta_org_url={server.url}", f"--state={tmp_path / 'cursor.json'}",
                            f"--output={tmp_path / 'lake'}", "--window=2s", "--poll_interval=1s", "--lookback=1d",
                            f"--bigquery_table={spec}", f"--bigquery_endpoint={bigquery_emulator}",
                            "--stop_after=60s"], cwd=REPO, env={**os.environ, "OKTA_API_TOKEN": TOKEN},
                           stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if Counter((r["uuid"], r["target_index"]) for r in bq_rows(target)) == expected_row_keys(events):
                    break
            except Exception:  # noqa: BLE001 - the table does not exist yet
                pass
            time.sleep(1)
    finally:
        run.kill()
        run.wait()
    assert Counter((r["uuid"], r["target_index"]) for r in bq_rows(target)) == expected_row_keys(events), \
        log.read_text()[-2000:]


class RecordingClient:
    """The boundary the emulator cannot show: BigQuery's per-row insert errors."""

    def __init__(self, refuse_uuid: str):
        self.refuse_uuid, self.calls = refuse_uuid, []

    def get_table(self, table_id):
        from types import SimpleNamespace

        from schemas.bigquery import bigquery_schema

        return SimpleNamespace(table_id=table_id, schema=[SimpleNamespace(name=f["name"]) for f in bigquery_schema()])

    def insert_rows_json(self, table_id, rows, row_ids):
        self.calls.append((rows, row_ids))
        return [{"index": i, "errors": [{"reason": "invalid", "message": "no such field: surprise"}]}
                for i, row in enumerate(rows) if row["uuid"] == self.refuse_uuid]


def test_rows_bigquery_refuses_become_dead_letters_and_insert_ids_are_uuid_target(tmp_path):
    events = make_events(20, dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), STEP)
    lake = tmp_path / "lake"
    export = write_jsonl(tmp_path / "e.jsonl", events)
    assert run_pipeline("--source=file", f"--input={export}", f"--output={lake}").code == 0
    files = [(str(p.parent.relative_to(lake)), p.name) for p in sorted(lake.glob("*/*/*.parquet"))]
    refused = personal(events)[3]["uuid"]
    client = RecordingClient(refused)
    sent, dead = stream_files(BigQueryTarget("okta-lake-test:okta.x"), str(lake), files, client=client)
    assert sent == sum(expected_row_keys(events).values())
    ids = [i for _, row_ids in client.calls for i in row_ids]
    assert sorted(ids) == sorted(f"{u}:{'' if t is None else t}" for u, t in expected_row_keys(events))
    assert {d["uuid"] for d in dead} == {refused} and all("no such field" in d["error"] for d in dead)
    assert all(d["stage"] == "bigquery" and d["payload"] for d in dead)
