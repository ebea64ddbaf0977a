"""``okta-personal-lake coverage`` over lakes written by real runs against the local System Log server.

Backfills that leave a hole, backfills that tile, an incremental chain (with the Okta tail in the middle),
a chain broken by a lost state file, a failed run: the report must find exactly the gaps the runs left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import time
from pathlib import Path

import pytest

from tests.support.helpers import SvgShapes, run_command, run_pipeline
from tests.support.okta import TOKEN, iso, make_events, recent_start
from tools.coverage import analysis, cli

STEP = dt.timedelta(seconds=1)
pytestmark = pytest.mark.usefixtures("okta_token_env")


def report(lake: Path, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([f"--output={lake}", *args])
    return code, out.getvalue() + err.getvalue()


def json_report(lake: Path, *args: str) -> tuple[int, dict]:
    code, text = report(lake, "--format=json", *args)
    return code, json.loads(text)


def backfill(server, lake: Path, since: dt.datetime, until: dt.datetime):
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--since={iso(since)}",
                       f"--until={iso(until)}", f"--output={lake}", "--slice=30m")
    assert run.code == 0, run.stderr
    return run


def test_backfills_with_a_hole_leave_exactly_that_gap_and_filling_it_clears_it(okta_server, tmp_path):
    start = recent_start(hours_back=5).replace(minute=0)
    hour = dt.timedelta(hours=1)
    server = okta_server(make_events(3 * 360, start, 10 * STEP))  # one event every 10 s for three hours
    lake = tmp_path / "lake"
    backfill(server, lake, start, start + hour)
    backfill(server, lake, start + 2 * hour, start + 3 * hour)
    requested = (f"--since={iso(start)}", f"--until={iso(start + 3 * hour)}")

    code, result = json_report(lake, *requested)
    assert code == 1
    [org] = result["orgs"]
    assert org["org_url"] == server.url
    assert org["gaps"] == [{"since": iso(start + hour), "until": iso(start + 2 * hour), "seconds": 3600.0}]
    assert [(c["since"], c["until"]) for c in org["covered"]] == [
        (iso(start), iso(start + hour)), (iso(start + 2 * hour), iso(start + 3 * hour))]
    # Events per hour come from the lake: 180 personal events in each backfilled hour, none in the hole.
    assert {h["hour"]: h["events"] for h in org["events_per_hour"]} == {
        iso(start): 180, iso(start + 2 * hour): 180}
    code, text = report(lake, *requested)
    assert code == 1 and f"GAP      [{iso(start + hour)}, {iso(start + 2 * hour)})  1h" in text

    # A range inside one covered span is fine even while the hole exists.
    assert report(lake, f"--since={iso(start)}", f"--until={iso(start + hour)}")[0] == 0

    # The HTML draws what the JSON says.
    code, page = report(lake, "--format=html", *requested)
    assert code == 1 and not re.search(r"<script|<link|<img|src=|href=|url\(|@import", page)  # self-contained
    drawn = SvgShapes()
    drawn.feed(page)
    assert [(r["data-since"], r["data-until"]) for r in drawn.shapes["gap"]] == [
        (g["since"], g["until"]) for g in org["gaps"]]
    assert [(r["data-since"], r["data-until"]) for r in drawn.shapes["covered"]] == [
        (c["since"], c["until"]) for c in org["covered"]]
    assert sorted((r["data-kind"], r["data-since"], r["data-until"], r["data-run"]) for r in drawn.shapes["backfill"]) \
        == sorted((s["kind"], s["since"], s["until"], s["run_id"]) for s in org["spans"])
    assert {r["data-hour"]: int(r["data-events"]) for r in drawn.shapes["events"]} == {
        h["hour"]: h["events"] for h in org["events_per_hour"]}

    # Filling the hole: the backfills now tile the range.
    backfill(server, lake, start + hour, start + 2 * hour)
    code, result = json_report(lake, *requested)
    assert code == 0, result
    assert result["orgs"][0]["gaps"] == []
    assert [(c["since"], c["until"]) for c in result["orgs"][0]["covered"]] == [(iso(start), iso(start + 3 * hour))]


def incremental(server, lake: Path, state: Path, lookback: str = "1d"):
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
                       f"--lookback={lookback}")
    assert run.code == 0, run.stderr
    return run


def links(lake: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.cursor.json")]
    # The tail's: one line per committed window, one file per job, hour and process.
    found += [json.loads(line) for p in (lake / "_runs" / "windows").glob("*.jsonl")
              for line in p.read_text().splitlines()]
    return sorted(found, key=lambda r: r["span_until"])


def test_an_incremental_chain_through_the_okta_tail_is_unbroken(okta_server, tmp_path):
    server = okta_server(make_events(200, recent_start(hours_back=3), STEP))
    lake, state = tmp_path / "lake", tmp_path / "cursor.json"
    incremental(server, lake, state)
    server.append(make_events(20, dt.datetime.now(dt.timezone.utc) - 5 * STEP, STEP, salt=1))
    incremental(server, lake, state)
    # The local Okta tail continues the same chain for a few seconds, then another incremental run.
    server.append(make_events(20, dt.datetime.now(dt.timezone.utc) - 5 * STEP, STEP, salt=2))
    tail = run_pipeline("--streaming", "--source=okta", f"--okta_org_url={server.url}", f"--state={state}",
                        f"--output={lake}", "--window=1s", "--poll_interval=1s", "--stop_after=5s")
    assert tail.code == 0, tail.stderr
    server.append(make_events(20, dt.datetime.now(dt.timezone.utc) - 5 * STEP, STEP, salt=3))
    incremental(server, lake, state)

    chain = links(lake)
    kinds = [link["kind"] for link in chain]
    assert kinds[:2] == ["incremental", "incremental"] and kinds[-1] == "incremental" and "okta-tail" in kinds
    tail_hours = {link["window"][1:12] for link in chain if link["kind"] == "okta-tail"}
    files = sorted((lake / "_runs" / "windows").iterdir())  # one per job and hour of windows, not one per window
    assert [p.suffix for p in files] == [".jsonl"] * len(tail_hours)
    assert chain[0]["started_from"] == "lookback"
    for before, after in zip(chain, chain[1:]):  # each link starts where the one before ended
        assert after["cursor_from"] == before["cursor_to"] and after["span_since"] == before["span_until"]
    assert all(TOKEN not in json.dumps(link) for link in chain)

    requested = (f"--since={chain[0]['span_since']}", f"--until={chain[-1]['span_until']}")
    code, result = json_report(lake, *requested)
    assert code == 0, result
    [org] = result["orgs"]
    assert org["gaps"] == [] and org["chain_breaks"] == [] and len(org["chain_starts"]) == 1
    assert org["covered"] == [{"since": chain[0]["span_since"], "until": chain[-1]["span_until"]}]
    assert sorted(s["run_id"] for s in org["spans"]) == sorted(link["run_id"] for link in chain)


def test_a_lost_state_file_breaks_the_chain_and_the_report_finds_that_gap(okta_server, tmp_path):
    server = okta_server(make_events(50, recent_start(hours_back=2), STEP))
    lake, state = tmp_path / "lake", tmp_path / "cursor.json"
    incremental(server, lake, state)
    incremental(server, lake, state)
    state.unlink()  # lost: the next run starts --lookback back, which no longer reaches the last caught-up time
    time.sleep(2.5)
    incremental(server, lake, state, lookback="1s")
    first, second, third = links(lake)
    assert third["started_from"] == "lookback" and third["span_since"] > second["span_until"]

    code, result = json_report(lake, f"--since={first['span_since']}", f"--until={third['span_until']}")
    assert code == 1
    assert result["orgs"][0]["gaps"] == [{
        "since": second["span_until"], "until": third["span_since"],
        "seconds": (analysis.moment(third["span_since"]) - analysis.moment(second["span_until"])).total_seconds()}]
    # Before the loss the chain was whole.
    assert json_report(lake, f"--since={first['span_since']}", f"--until={second['span_until']}")[0] == 0


def test_a_failed_run_is_recorded_and_listed_without_its_secret(okta_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", "00-not-the-right-token-c2VjcmV0")
    start = recent_start()
    server = okta_server(make_events(10, start, STEP))
    lake = tmp_path / "lake"
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--since={iso(start)}",
                       f"--until={iso(start + 10 * STEP)}", f"--output={lake}", "--run_id=bad-token-run")
    assert run.code == 1
    record = lake / "_runs" / "bad-token-run.failed.json"
    assert "00-not-the-right-token-c2VjcmV0" not in record.read_text()
    code, result = json_report(lake, f"--since={iso(start)}", f"--until={iso(start + 10 * STEP)}")
    assert code == 1  # nothing covers the range the failed run was for
    [org] = result["orgs"]
    [failed] = org["failed_runs"]
    assert failed["run_id"] == "bad-token-run" and failed["mode"] == "backfill" and "401" in failed["error"]
    assert failed["since"] == iso(start)
    code, text = report(lake)
    assert code == 0 and "FAILED   run bad-token-run (backfill)" in text


def test_a_lake_in_a_bucket_is_read_with_the_same_filesystem_options(okta_server, s3_server, tmp_path):
    server = okta_server(make_events(100, recent_start(hours_back=2), STEP))
    lake = f"s3://lake/coverage-{dt.datetime.now().strftime('%H%M%S%f')}"
    state = tmp_path / "cursor.json"
    for _ in range(2):
        run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
                           "--lookback=1d", *s3_server)
        assert run.code == 0, run.stderr
    # In its own process: only the flags given on its command line can reach the bucket.
    command = run_command("coverage", f"--output={lake}", "--format=json", *s3_server)
    assert command.code == 0, command.stderr
    result = json.loads(command.stdout)
    assert result["events_per_hour_source"].startswith("not counted")
    [org] = result["orgs"]
    assert [s["kind"] for s in org["spans"]] == ["incremental", "incremental"]
    assert org["gaps"] == [] and org["chain_breaks"] == [] and len(org["covered"]) == 1
    code, text = report(lake, "--s3_secret_key", "not-echoed-c2VjcmV0")
    assert code == 2 and "unknown option --s3_secret_key (did you mean --s3_secret_access_key?)" in text
    assert "not-echoed-c2VjcmV0" not in text
    assert report(lake, "--no_such_option=1")[0] == 2


def test_events_per_hour_are_counted_per_org(okta_server, tmp_path):
    # Two orgs in one lake: each org's hourly counts are its own rows (the okta_org column).
    from tools.coverage.analysis import read_events_per_hour
    from tools.coverage.analysis import report as coverage_report

    start = recent_start(hours_back=4).replace(minute=0)
    hour = dt.timedelta(hours=1)
    busy = okta_server(make_events(360, start, 10 * STEP))  # one event every 10 s for an hour
    quiet = okta_server(make_events(36, start, 100 * STEP, salt=7))  # other uuids: another org
    lake = tmp_path / "lake"
    backfill(busy, lake, start, start + hour)
    backfill(quiet, lake, start, start + hour)
    by_org, _ = read_events_per_hour(str(lake))
    assert None not in by_org and len(by_org) == 2
    result = coverage_report(str(lake), None, None, None)
    counts = {org["org_url"]: sum(h["events"] for h in org["events_per_hour"]) for org in result["orgs"]}
    assert counts == {busy.url: 180, quiet.url: 18}
