"""--metrics_port and --log_format=json on real runs: scrape a live Okta tail, parse its JSON log, grep for the token.

The tail runs as a real process against the local System Log server with a
canary token; while it runs the test scrapes /metrics and /healthz and, once
the lake holds every event, checks the counters against the lake and the
window lines the run printed. Then Okta goes away and /healthz must turn 503.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import REPO
from tests.support.okta import assert_lake_exact, make_events, personal, read_lake, wait_for_lake
from tests.support.stream import endpoint, health, json_log, scrape, start_stream, stop, window_totals

CANARY = "00-CANARY-metrics-5d2e8f1a9c"
STEP = dt.timedelta(seconds=1)
UTC = dt.timezone.utc


def test_a_live_tail_serves_metrics_that_match_the_lake_and_its_json_log(okta_server, tmp_path):
    now = dt.datetime.now(UTC)
    history = make_events(300, now - dt.timedelta(hours=2), STEP)
    server = okta_server(history, token=CANARY)
    lake, state, log = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "tail.log"
    args = ["--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
            "--window=2s", "--poll_interval=1s", "--lookback=1d", "--metrics_port=0", "--healthz_stall=4s",
            "--log_format=json", "--verbose"]
    run = start_stream(*args, log=log, env={"OKTA_API_TOKEN": CANARY})
    try:
        base = endpoint(log, run)
        assert health(base) == 200
        fresh = make_events(40, dt.datetime.now(UTC) - STEP, dt.timedelta(milliseconds=10), salt=7)
        server.append(fresh)
        wait_for_lake(lake, history + fresh, run, log)
        written = len({row["uuid"] for row in read_lake(lake)})
        deadline = time.monotonic() + 30
        org = server.url.split("://")[1]  # the okta_org of its rows
        while scrape(base, org).get("okta_personal_events_written_total") != written and time.monotonic() < deadline:
            time.sleep(0.3)
        metrics = scrape(base, org)
        assert health(base) == 200

        # Okta goes away: no page, no window for longer than --healthz_stall -> 503.
        server.stop()
        deadline = time.monotonic() + 60
        while health(base) != 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert health(base) == 503
        assert scrape(base, org)["okta_personal_healthy"] == 0
    finally:
        stop(run)

    assert_lake_exact(lake, history + fresh)
    records = json_log(log)
    rows, events, windows = window_totals(records)
    assert metrics["okta_personal_events_written_total"] == written == events == len(personal(history + fresh))
    assert metrics["okta_personal_rows_written_total"] == rows == len(read_lake(lake))
    assert metrics["okta_personal_windows_committed_total"] == windows >= 1
    read = metrics["okta_personal_events_read_total"]
    assert read == (metrics["okta_personal_events_written_total"] + metrics["okta_personal_filtered_out_total"]
                    + metrics["okta_personal_duplicates_total"] + metrics["okta_personal_dead_letters_total"])
    assert metrics["okta_personal_okta_pages_total"] >= 1
    assert metrics["okta_personal_okta_requests_total"] >= metrics["okta_personal_okta_pages_total"]
    assert metrics["okta_personal_commit_duration_seconds_count"] == windows
    newest = max(dt.datetime.fromisoformat(e["published"].replace("Z", "+00:00")) for e in personal(history + fresh))
    assert metrics["okta_personal_newest_committed_published_seconds"] == pytest.approx(newest.timestamp(), abs=1e-3)
    assert 0 <= metrics["okta_personal_lag_seconds"] < 120
    assert not math.isnan(metrics["okta_personal_cursor_age_seconds"])
    # The JSON log: every line an object with the indexed fields, the run id throughout, never the token.
    assert {r["severity"] for r in records} <= {"INFO", "NOTICE", "WARNING", "ERROR", "DEBUG", "CRITICAL"}
    run_ids = {r["run_id"] for r in records[1:]}
    assert len(run_ids) == 1 and run_ids != {""}
    assert all({"severity", "message", "time", "logger", "logging.googleapis.com/labels"} <= set(r) for r in records)
    assert any(r["severity"] == "WARNING" for r in records)  # the outage line
    assert CANARY not in log.read_text()
    assert CANARY not in "".join(p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()
                                 and p.name != "server-0.jsonl")


def test_a_batch_backfill_logs_json_lines_without_the_token_and_serves_while_it_runs(okta_server, tmp_path):
    start = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    events = make_events(200, start, STEP)
    broken = dict(personal(make_events(1, start, STEP, salt=3))[0], actor=["not", "an", "object"])
    server = okta_server(events + [broken], token=CANARY)
    command = [sys.executable, "-m", "pipeline", "--source=okta", f"--okta_org_url={server.url}",
               f"--since={start:%Y-%m-%dT%H:%M:%SZ}", f"--until={start + 200 * STEP:%Y-%m-%dT%H:%M:%SZ}",
               f"--output={tmp_path / 'lake'}", "--log_format=json", "--metrics_port=0", "--verbose",
               "--progress_interval=0.5"]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "OKTA_API_TOKEN": CANARY}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (tmp_path / "stderr.log").write_text(done.stderr)
    records = json_log(tmp_path / "stderr.log")
    assert any(r["message"].startswith("metrics: http://127.0.0.1:") for r in records)
    assert len({r["run_id"] for r in records}) == 1
    assert "-> OK" in done.stdout  # the summary stays a human report on stdout
    assert CANARY not in done.stdout + done.stderr
    assert_lake_exact(tmp_path / "lake", events)


def test_the_pubsub_loop_feeds_the_same_metrics_with_an_empty_org(pubsub_emulator, tmp_path):
    """The local Pub/Sub loop against Google's emulator, the mirror installed as --metrics_port installs it."""
    from common import metrics as beam_metrics
    from pipeline.monitoring import LocalMetrics
    from streaming.pubsub_loop import PubSubTail
    from tests.support.okta import expected_row_keys, lake_row_keys
    from tests.support.stream import loop_settings, publish_events

    subscription, events = publish_events(pubsub_emulator, "okta-metrics", 80)
    lake = tmp_path / "lake"
    local = LocalMetrics("", streaming=True, stall_seconds=600)
    beam_metrics.mirror_to(local)
    try:
        tail = PubSubTail(loop_settings(subscription, lake, 2))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and set(lake_row_keys(lake)) != set(expected_row_keys(events)):
            tail.tick()
    finally:
        beam_metrics.mirror_to(None)
    assert_lake_exact(lake, events)
    values = {s.name: s.value for f in text_string_to_metric_families(local.scrape().decode()) for s in f.samples
              if s.labels.get("org") == ""}
    assert values["okta_personal_events_written_total"] == len(personal(events))
    assert values["okta_personal_events_read_total"] == len(events)
    assert values["okta_personal_filtered_out_total"] == len(events) - len(personal(events))
    assert values["okta_personal_pubsub_messages_acked_total"] == len(events)
    assert values["okta_personal_windows_committed_total"] >= 1
    assert local.healthy() == (True, "ok")


def test_a_batch_file_run_mirrors_its_summary_counts(tmp_path, captured_metrics):
    """In this process (the FnApiRunner's in-memory workers): what /metrics held at the end = the summary."""
    from tests.support.helpers import real_events, run_pipeline, write_jsonl

    source = write_jsonl(tmp_path / "in.jsonl", [dict(e, eventType="personal.x") for e in real_events()])
    run = run_pipeline(f"--input={source}", f"--output={tmp_path / 'lake'}", "--metrics_port=0")
    assert run.code == 0, run.stderr
    [local] = captured_metrics
    values = {s.name: s.value for f in text_string_to_metric_families(local.scrape().decode()) for s in f.samples
              if s.labels == {"org": ""}}
    for label, name in (("events read", "events_read"), ("events written", "events_written"),
                        ("dead letters", "dead_letters"), ("rows written", "rows_written"), ("coerced", "coerced")):
        assert values[f"okta_personal_{name}_total"] == run.count(label), name
    assert run.count("coerced") >= 1 and run.count("dead letters") >= 1
    # The lag is read back from the committed files: now minus the newest published in the lake.
    newest = max(pq.read_table(tmp_path / "lake", columns=["published"]).column("published").to_pylist())
    assert values["okta_personal_newest_committed_published_seconds"] == pytest.approx(newest.timestamp())
    assert values["okta_personal_lag_seconds"] >= time.time() - newest.timestamp() - 60
    assert values["okta_personal_commit_duration_seconds_count"] >= 1
