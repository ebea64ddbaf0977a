"""Lakes and cursors on gs:// and s3://, through Beam's filesystems, against gcp-storage-emulator and moto."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from sinks import fs
from tests.helpers import run_pipeline
from tests.okta_helpers import TOKEN, expected_row_keys, make_events, personal

STEP = dt.timedelta(seconds=1)


@pytest.fixture(params=["gs", "s3"])
def cloud(request, monkeypatch):
    """(lake base URI, extra pipeline options) for one stand-in, its environment set."""
    if request.param == "gs":
        for key, value in request.getfixturevalue("gcs_emulator").items():
            monkeypatch.setenv(key, value)
        return "gs://lake-bucket", []
    return "s3://lake", request.getfixturevalue("s3_server")


def cloud_rows(lake: str) -> Counter:
    keys = Counter()
    for path in fs.list_files(fs.join(lake, "event_date=*", "event_type=*", "*.parquet")):
        table = fs.read_parquet(path, columns=["uuid", "target_index"])
        keys.update(zip(table.column("uuid").to_pylist(), table.column("target_index").to_pylist()))
    return keys


def cloud_dead_letters(lake: str) -> list[dict]:
    records = []
    for path in fs.list_files(fs.join(lake, "_dead_letter", "*", "*.jsonl")):
        records += [json.loads(line) for line in fs.read_bytes(path).splitlines() if line.strip()]
    return records


def test_incremental_runs_keep_lake_dead_letters_and_cursor_in_the_bucket(cloud, okta_server, okta_token_env, request):
    base, extra = cloud
    prefix = f"{base}/{request.node.callspec.id}-{dt.datetime.now().strftime('%H%M%S%f')}"
    lake, state = f"{prefix}/lake", f"{prefix}/state/cursor.json"
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2)
    events = make_events(600, start, STEP)
    broken = dict(personal(make_events(1, start, STEP, salt=7))[0], actor="not-an-object")
    server = okta_server(events + [broken])

    def run():
        return run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--state={state}",
                            f"--output={lake}", "--lookback=1d", *extra)

    first = run()
    assert first.code == 0, first.stderr
    assert cloud_rows(lake) == expected_row_keys(events)
    dead = cloud_dead_letters(lake)
    assert [d["uuid"] for d in dead] == [broken["uuid"]] and "actor" in dead[0]["error"]
    cursor = json.loads(fs.read_bytes(state))
    assert cursor["next_url"].startswith(server.url) and TOKEN not in fs.read_bytes(state).decode()

    more = make_events(50, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=10), STEP, salt=8)
    server.append(more)
    second = run()
    assert second.code == 0, second.stderr
    assert second.count("events read") == len(personal(more))
    assert cloud_rows(lake) == expected_row_keys(events + more)
    assert json.loads(fs.read_bytes(state))["next_url"] != cursor["next_url"]
    # No staging leftovers in the bucket once the runs are done.
    assert not fs.list_files(fs.join(lake, "_staging", "**"))


def test_replaying_the_same_files_into_a_bucket_adds_nothing(cloud, tmp_path, request):
    from tests.helpers import write_jsonl

    base, extra = cloud
    lake = f"{base}/{request.node.callspec.id}-replay-{dt.datetime.now().strftime('%H%M%S%f')}"
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(300, start, dt.timedelta(minutes=11))  # crosses event dates
    export = write_jsonl(tmp_path / "export.jsonl", events)
    for _attempt in range(2):
        run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}", *extra)
        assert run.code == 0, run.stderr
        assert cloud_rows(lake) == expected_row_keys(events)
    assert run.count("duplicates in lake") == len(personal(events))
