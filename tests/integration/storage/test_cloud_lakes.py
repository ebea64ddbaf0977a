"""Lakes and cursors on gs:// and s3:// (storage/'s own clients), against fake-gcs-server and moto's S3 server."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

from sinks.lake import staging
from storage import fs
from tests.support import kill_points
from tests.support.helpers import run_pipeline, use_in_this_process
from tests.support.okta import TOKEN, expected_row_keys, make_events, personal
from tests.support.stores import stored_row_keys

STEP = dt.timedelta(seconds=1)


def cloud_dead_letters(lake: str) -> list[dict]:
    records = []
    for path in fs.list_files(fs.join(lake, "_dead_letter", "*", "*.jsonl")):
        records += [json.loads(line) for line in fs.read_bytes(path).splitlines() if line.strip()]
    return records


# What a finished lake holds: committed data files, dead letters and manifests, the last (released) commit
# lease of each partition (with the store-clock probe a waiter may have written beside it), and the event types
# and undocumented paths the lake has seen (schema drift), nothing else.
COMMITTED = re.compile(r"(event_date=[^/]+/event_type=[^/]+/part-[^/]+\.parquet"
                       r"|_dead_letter/[^/]+/dead-letters-[^/]+\.jsonl|_runs/[^/.]+[^/]*\.json"
                       r"|_locks/event_date=[^/]+/event_type=[^/]+/(\d{12}\.lease|\.clock)"
                       r"|_drift/(types|paths/[^/]+)/[^/]+\.json)")


def assert_only_committed_files(lake: str) -> None:
    names = [path[len(lake) + 1:] for path in fs.list_files(fs.join(lake, "**"))]
    assert names and all(COMMITTED.fullmatch(name) for name in names), [n for n in names
                                                                        if not COMMITTED.fullmatch(n)]


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
    assert stored_row_keys(lake) == expected_row_keys(events)
    dead = cloud_dead_letters(lake)
    assert [d["uuid"] for d in dead] == [broken["uuid"]] and "actor" in dead[0]["error"]
    cursor = json.loads(fs.read_bytes(state))
    assert cursor["next_url"].startswith(server.url) and TOKEN not in fs.read_bytes(state).decode()

    more = make_events(50, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=10), STEP, salt=8)
    server.append(more)
    second = run()
    assert second.code == 0, second.stderr
    assert second.count("events read") == len(personal(more))
    assert stored_row_keys(lake) == expected_row_keys(events + more)
    assert json.loads(fs.read_bytes(state))["next_url"] != cursor["next_url"]
    # No staging leftovers (nor leases) in the bucket once the runs are done.
    assert not fs.list_files(fs.join(lake, "_staging", "**"))
    assert_only_committed_files(lake)


def test_replaying_the_same_files_into_a_bucket_adds_nothing(cloud, tmp_path, request):
    from tests.support.helpers import write_jsonl

    base, extra = cloud
    lake = f"{base}/{request.node.callspec.id}-replay-{dt.datetime.now().strftime('%H%M%S%f')}"
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(300, start, dt.timedelta(minutes=11))  # crosses event dates
    export = write_jsonl(tmp_path / "export.jsonl", events)
    for _attempt in range(2):
        run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}", *extra)
        assert run.code == 0, run.stderr
        assert stored_row_keys(lake) == expected_row_keys(events)
    assert run.count("duplicates in lake") == len(personal(events))


def test_a_run_killed_mid_commit_leaves_a_bucket_that_reads_exactly(cloud, tmp_path, request):
    """kill -9 after one partition is committed; the next run completes the lake; the dead run's staging
    (lease and staged files in the bucket) is kept while it may be live and removed once stale."""
    from tests.support.helpers import write_jsonl

    base, extra = cloud
    lake = f"{base}/{request.node.callspec.id}-killed-{dt.datetime.now().strftime('%H%M%S%f')}"
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    events = make_events(120, start, dt.timedelta(minutes=24))  # four partitions
    export = write_jsonl(tmp_path / "export.jsonl", events)
    marker, log = tmp_path / "marker", tmp_path / "run.log"
    killed = kill_points.start("commit", marker, log, "--source=file", f"--input={export}", f"--output={lake}",
                               *extra)
    try:
        kill_points.wait_for(marker, killed, log)
    finally:
        kill_points.kill(killed)
    use_in_this_process(extra)
    [dead] = staging.staging_folders(lake)
    assert fs.list_files(fs.join(dead, "*.parquet.staged"))
    assert 0 < sum(stored_row_keys(lake).values()) < sum(expected_row_keys(events).values())

    run = run_pipeline("--source=file", f"--input={export}", f"--output={lake}", *extra)
    assert run.code == 0, run.stderr
    assert stored_row_keys(lake) == expected_row_keys(events)
    assert staging.remove_stale(lake) == []  # written seconds ago: it may be a live run's
    later = time.time() + staging.STALE_AFTER_SECONDS + 60
    assert staging.remove_stale(lake, now=later) == [dead]
    assert_only_committed_files(lake)


def test_a_bucket_staging_whose_lease_is_renewed_is_kept(cloud, request):
    base, extra = cloud
    use_in_this_process(extra)
    lake = f"{base}/{request.node.callspec.id}-leases-{dt.datetime.now().strftime('%H%M%S%f')}"
    live, dead = staging.staging_dir(lake, "live"), staging.staging_dir(lake, "dead")
    for folder in (live, dead):
        fs.write_bytes(fs.join(folder, "x.parquet.staged"), b"PAR1 half")
        staging.write_lease(folder)
    folders = staging.staging_folders(lake)
    assert sorted(folders) == [dead, live]
    assert all(abs(t - time.time()) < 600 for t in folders.values()), folders  # the store's clock is usable
    later = time.time() + staging.STALE_AFTER_SECONDS + 60
    staging.write_lease(live, now=later)  # renewed "an hour later"; the objects themselves are older by then
    assert staging.remove_stale(lake, now=later) == [dead]
    assert sorted(staging.staging_folders(lake)) == [live]
