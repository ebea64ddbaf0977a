"""``python -m pipeline --streaming --source=okta --iceberg_table=...``: one Iceberg snapshot per streaming commit.

The Okta tail runs as a real process against the System Log stand-in, is killed mid-stream and
restarted; the table must then hold exactly the lake's rows, each commit one snapshot whose summary
names the job, the window, the source and the cursor after it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

from sinks.iceberg.settings import IcebergTarget
from sinks.iceberg.table import snapshot_summaries
from tests.support.helpers import read_lake
from tests.support.iceberg import append_recent, feed_windows, lake_table, lake_table_keys, wait_for_table
from tests.support.okta import TOKEN, assert_lake_exact, expected_row_keys, make_events, wait_for_lake
from tests.support.stream import UTC, start_stream, stop, tail_args

STEP = dt.timedelta(seconds=1)


def test_okta_tail_commits_each_poll_as_one_snapshot_and_a_restart_adds_no_duplicate(okta_server, tmp_path):
    now = dt.datetime.now(UTC)
    history = make_events(200, now - dt.timedelta(hours=3), STEP)
    server = okta_server(history)
    lake, state, log = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "tail.log"
    args = [*tail_args(server, lake, state), "--iceberg_table=okta.events", "--run_id=job-a"]
    run = start_stream(*args, log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        wait_for_table(lake, history, run, log)
        appended = feed_windows(server, lake, history, run, log, batches=3)
        wait_for_lake(lake, history + appended, run, log)
        more = append_recent(server, 20, salt=3)
        time.sleep(1.5)  # killed mid-stream: `more` may be read, in the lake, in the table, or none of these
    finally:
        stop(run)
    later = append_recent(server, 20, salt=4)
    rerun = start_stream(*[a for a in args if a != "--run_id=job-a"], "--run_id=job-b", log=log,
                         env={"OKTA_API_TOKEN": TOKEN})
    everything = history + appended + more + later
    try:
        wait_for_lake(lake, everything, rerun, log)
        wait_for_table(lake, everything, rerun, log)
    finally:
        stop(rerun)

    assert_lake_exact(lake, everything)
    table_keys = lake_table_keys(lake)
    doubled = [k for k, n in table_keys.items() if n > 1]
    assert not doubled, f"{len(doubled)} rows are in the Iceberg table twice, e.g. {doubled[:3]}"
    assert set(table_keys) == {(r["uuid"], r["target_index"]) for r in read_lake(lake)}

    snapshots = [s for s in snapshot_summaries(lake_table(lake)) if s["operation"] == "append"]
    assert len([s for s in snapshots if s["run-id"] == "job-a"]) >= 4  # the history, then each batch
    windows = [(s["run-id"], s["window"]) for s in snapshots]
    # A commit per poll: a window may be several snapshots, each with the cursor after it, never reopened.
    for job in ("job-a", "job-b"):
        of_job = [window for run, window in windows if run == job]
        assert of_job == sorted(of_job), f"{job} committed to a window after a later one"
    cursors = [s["cursor"] for s in snapshots]
    assert len(cursors) == len(set(cursors)), "two snapshots added rows at the same cursor"
    assert {s["run-id"] for s in snapshots} <= {"job-a", "job-b"} and "job-a" in {s["run-id"] for s in snapshots}
    # One snapshot per window that wrote lake files: the windows in the file names are the snapshots' windows.
    lake_windows = {m.groups() for p in lake.glob("*/*/part-w*.parquet")
                    for m in [re.match(r"part-(w\d{8}T\d{6}Z)-(job-[ab])-", p.name)] if m}
    assert {(job, window) for window, job in lake_windows} <= set(windows)
    for s in snapshots:
        assert s["source"] == "okta"
        assert s["cursor"].startswith(server.url), s["cursor"]
        assert int(s["rows-added"]) > 0 and int(s["lake-rows-written"]) >= 0
    assert sum(int(s["rows-added"]) for s in snapshots) == sum(table_keys.values())
    # The tail stored a cursor only after a snapshot recorded it (or after a window with no new rows).
    stored = json.loads(state.read_text())["next_url"]
    assert stored.startswith(server.url)
    assert TOKEN not in log.read_text()


def test_pubsub_loop_commits_each_window_as_one_snapshot_before_acknowledging(pubsub_emulator, tmp_path, monkeypatch):
    import dataclasses

    from sinks.iceberg import windows as iceberg_windows
    from streaming.pubsub_loop import PubSubTail
    from tests.support.okta import lake_row_keys
    from tests.support.stream import loop_settings, publish_events

    monkeypatch.setattr(iceberg_windows, "_COMMITTERS", {})
    subscription, events = publish_events(pubsub_emulator, "okta-iceberg", 60)
    lake = tmp_path / "lake"
    base = loop_settings(subscription, lake, 2)
    target = IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))
    settings = dataclasses.replace(base, window=dataclasses.replace(base.window, iceberg=target))
    tail = PubSubTail(settings)
    deadline = time.monotonic() + 90
    want = set(expected_row_keys(events))
    while time.monotonic() < deadline and set(lake_table_keys(lake)) != want:
        tail.tick()
    table_keys = lake_table_keys(lake)
    assert set(table_keys) == want and max(table_keys.values()) == 1
    assert set(table_keys) == set(lake_row_keys(lake))
    snapshots = [s for s in snapshot_summaries(lake_table(lake)) if s["operation"] == "append"]
    assert snapshots and all(s["source"] == "pubsub" and s["run-id"] == "loop-test" for s in snapshots)
    assert len({s["window"] for s in snapshots}) == len(snapshots)
    assert sum(int(s["rows-added"]) for s in snapshots) == len(want)
