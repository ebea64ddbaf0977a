"""Restart from the Iceberg table alone: no ``--state``, the run resumes from the cursor the snapshots record.

Against the System Log stand-in: an incremental batch run resumes where the table's last snapshot
left off (it reads only the new events), and an Okta tail killed mid-stream and restarted with only
``--iceberg_table`` (and a lookback too short to hide a gap) leaves every event in the table once.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter

from sinks.iceberg.cursor import parse
from sinks.iceberg.table import snapshot_summaries
from tests.support.helpers import run_pipeline
from tests.support.iceberg import append_recent, feed_windows, lake_table, lake_table_keys, wait_for_table
from tests.support.okta import TOKEN, assert_lake_exact, expected_row_keys, make_events, personal, recent_start
from tests.support.stream import UTC, start_stream, stop

STEP = dt.timedelta(seconds=1)


def test_an_incremental_run_without_state_resumes_from_the_tables_cursor(okta_server, tmp_path, monkeypatch,
                                                                        caplog):
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)
    first = make_events(200, recent_start(hours_back=2), STEP)
    server = okta_server(first)
    lake = tmp_path / "lake"

    def run(*extra):
        return run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--output={lake}", "--lookback=1d",
                            "--iceberg_table=okta.events", *extra)

    one = run()
    assert one.code == 0, one.stderr
    assert one.count("events read") == len(personal(first))
    more = make_events(40, dt.datetime.now(UTC) - dt.timedelta(seconds=30), STEP, salt=5)
    server.append(more)
    two = run()
    assert two.code == 0, two.stderr
    assert two.count("events read") == len(personal(more))  # from the table's cursor, not 1d back
    assert lake_table_keys(lake) == expected_row_keys(first + more)
    cursors = [parse(s["cursor"]) for s in snapshot_summaries(lake_table(lake))]
    assert [c[0]["org_url"] for c in cursors] == [server.url, server.url]
    assert TOKEN not in json.dumps(cursors)

    # --state given too, holding another (older) cursor of the same org: the table's wins, and says so.
    state = tmp_path / "cursor.json"
    state.write_text(json.dumps({"org_url": server.url, "filter": cursors[0][0]["filter"],
                                 "next_url": cursors[0][0]["next_url"], "updated_at": "", "run_id": "old",
                                 "version": 1}))
    three = run(f"--state={state}")
    assert three.code == 0, three.stderr
    assert three.count("events read") == 0
    assert "resuming from the table's" in caplog.text  # a warning line (on stderr outside pytest)
    assert json.loads(state.read_text())["next_url"] == cursors[1][0]["next_url"]  # stored after the run
    assert lake_table_keys(lake) == expected_row_keys(first + more)


def test_a_tail_killed_mid_stream_restarts_from_the_table_alone_without_gap_or_duplicate(okta_server, tmp_path):
    now = dt.datetime.now(UTC)
    history = make_events(200, now - dt.timedelta(hours=3), STEP)
    server = okta_server(history)
    lake, log = tmp_path / "lake", tmp_path / "tail.log"
    common = ["--source=okta", f"--okta_org_url={server.url}", f"--output={lake}", "--window=3s",
              "--poll_interval=1s", "--iceberg_table=okta.events"]
    run = start_stream(*common, "--lookback=1d", "--run_id=job-a", log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        wait_for_table(lake, history, run, log)
        appended = feed_windows(server, lake, history, run, log, batches=2)
        more = append_recent(server, 20, salt=3)
        time.sleep(1.5)  # killed mid-stream: `more` may be read, in the lake, in the table, or none of these
    finally:
        stop(run)
    # Published while the tail was down, then longer ago than the restart's lookback: only a restart from the
    # table's cursor reads them.
    down = append_recent(server, 20, salt=4)
    time.sleep(4)
    assert not (tmp_path / "cursor.json").exists()
    rerun = start_stream(*common, "--lookback=1s", "--run_id=job-b", log=log, env={"OKTA_API_TOKEN": TOKEN})
    everything = history + appended + more + down
    try:
        wait_for_table(lake, everything, rerun, log)
    finally:
        stop(rerun)

    table_keys = lake_table_keys(lake)
    assert table_keys == expected_row_keys(everything), "the table misses rows or holds some twice"
    assert_lake_exact(lake, everything)
    snapshots = [s for s in snapshot_summaries(lake_table(lake)) if s["operation"] == "append"]
    assert {s["run-id"] for s in snapshots} == {"job-a", "job-b"}
    assert Counter(table_keys.values()) == Counter({1: len(table_keys)})
