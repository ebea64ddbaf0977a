"""One set of numbers: a tail's window lines, its /metrics, its summary and its lake say the same counts.

An Okta tail runs as a real process against the local System Log server, whose log holds events that become
dead letters at every stage (damaged JSON: decode; a blank uuid: validate; a documented field of the wrong type:
flatten; from the hostile corpus), and repeats of events the tail already committed. Okta is down (503) for a
while in the middle: the scrape must show the requests and retries of the outage while it lasts. Once the tail
has read everything, its counters are still; then it is stopped (Ctrl-C), prints its summary, and every count is
compared.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import duckdb

from tests.support.helpers import REPO, dead_letters
from tests.support.hostile import corpus
from tests.support.okta import TOKEN, make_events, personal, wait_for_lake
from tests.support.stream import STEP, UTC, endpoint, json_log, scrape

NAMES = {"read": "events_read", "written": "events_written", "filtered": "filtered_out",
         "duplicates": "duplicates", "dead letters": "dead_letters", "withheld": "withheld"}


def wrong_type(events: list[dict]) -> list[dict]:
    """Personal events whose actor is a string: a flatten-stage dead letter each."""
    return [{**event, "actor": "not an object"} for event in personal(events)]


def summary_check(text: str) -> dict[str, int]:
    """The numbers of the summary's check line: read N = written N + filtered N + ... -> OK."""
    [line] = [line for line in text.splitlines() if line.strip().startswith("check: read")]
    assert line.rstrip().endswith("-> OK"), line
    return {name.strip(): int(value.replace(",", "")) for name, value in re.findall(r"([a-z ]+?) ([\d,]+)",
                                                                                     line.split("check:")[1])}


def window_sums(records: list[dict]) -> dict[str, int]:
    sums = dict.fromkeys(("read", "rows", "events", "dead", "duplicates"), 0)
    for record in records:
        found = re.match(r"window .*: read ([\d,]+), wrote ([\d,]+) rows \(([\d,]+) events\) in \d+ partition\(s\), "
                         r"(\d+) dead letters, (\d+) duplicates", record["message"])
        if found:
            for key, value in zip(sums, found.groups()):
                sums[key] += int(value.replace(",", ""))
    return sums


def counter(metrics: dict, name: str) -> int:
    return int(metrics.get(f"okta_personal_{name}_total", 0))


def test_a_tail_reports_one_set_of_numbers_through_dead_letters_repeats_and_an_outage(okta_server, tmp_path):
    now = dt.datetime.now(UTC)
    history = make_events(120, now - dt.timedelta(hours=2), STEP)
    broken = wrong_type(make_events(6, now - dt.timedelta(hours=1), STEP, salt=3))
    hostile = [entry for entry in corpus(now - dt.timedelta(minutes=30)) if entry.fate != "filtered"]
    blank_uuid = {**personal(make_events(2, now - dt.timedelta(minutes=20), STEP, salt=4))[0], "uuid": " "}
    server = okta_server(history + broken + [blank_uuid])
    server.append([entry.line for entry in hostile], persisted_at=now - dt.timedelta(minutes=10))
    stages = Counter(entry.fate for entry in hostile if entry.fate in ("decode", "flatten"))
    stages.update({"flatten": len(broken), "validate": 1})
    lake, state, log, out = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "tail.log", tmp_path / "out"
    command = [sys.executable, "-m", "pipeline", "--streaming", "--source=okta", f"--okta_org_url={server.url}",
               f"--state={state}", f"--output={lake}", "--window=2s", "--poll_interval=1s", "--lookback=1d",
               "--metrics_port=0", "--log_format=json"]
    run = subprocess.Popen(command, cwd=REPO, env={**os.environ, "OKTA_API_TOKEN": TOKEN}, stdout=out.open("wb"),
                           stderr=log.open("wb"), start_new_session=True)
    try:
        base = endpoint(log, run)
        wait_for_lake(lake, history, run, log)

        # Okta is down: the requests and retries of the outage show while it lasts.
        before = scrape(base)
        server.outage(503)
        deadline = time.monotonic() + 60
        during = before
        while counter(during, "okta_retries") < counter(before, "okta_retries") + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            during = scrape(base)
        server.outage(None)
        assert counter(during, "okta_retries") >= counter(before, "okta_retries") + 2
        assert counter(during, "okta_requests") > counter(before, "okta_requests")
        assert counter(during, "events_read") == counter(before, "events_read")  # no page came meanwhile

        fresh = make_events(30, dt.datetime.now(UTC) - STEP, dt.timedelta(milliseconds=10), salt=7)
        repeats = personal(history)[:5]  # Okta delivers at least once: the same events again
        server.append(fresh + repeats)
        # The filter goes to Okta (eventType sw "personal."): only personal events are read.
        read_all = len(personal(history)) + len(broken) + len(hostile) + 1 + len(personal(fresh)) + len(repeats)
        kept = len(personal(history + fresh)) + sum(1 for entry in hostile if entry.fate == "kept")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # everything read and committed: the counters are still
            still = scrape(base)
            if counter(still, "events_read") == read_all and counter(still, "events_written") == kept and counter(
                    still, "dead_letters") == sum(stages.values()):
                break
            time.sleep(0.3)
        time.sleep(2.5)  # one more window: anything left to commit would show now
        still = scrape(base)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the tail stops and prints its summary
        run.wait(timeout=60)
    assert run.returncode == 0, log.read_text()[-3000:]

    summary = summary_check(out.read_text())
    windows = window_sums(json_log(log))
    [(rows, events)] = duckdb.sql(
        f"SELECT count(*), count(DISTINCT uuid) FROM read_parquet('{lake}/event_date=*/event_type=*/*.parquet', "
        "hive_partitioning=true)").fetchall()  # the README's query

    assert summary == {name: counter(still, metric) for name, metric in NAMES.items()}
    assert summary["read"] == read_all == windows["read"]
    assert summary["written"] == events == windows["events"] == kept
    assert counter(still, "rows_written") == rows == windows["rows"]
    assert summary["dead letters"] == windows["dead"] == len(dead_letters(lake)) == sum(stages.values())
    by_stage = {stage: int(still.get(f"okta_personal_dead_letters_by_stage_total[('stage', '{stage}')]", 0))
                for stage in ("decode", "validate", "flatten")}
    assert by_stage == stages == Counter(record["stage"] for record in dead_letters(lake))
    assert summary["duplicates"] == windows["duplicates"] == len(repeats)
    assert summary["filtered"] == 0  # Okta filtered them
    assert summary["withheld"] == 0


def test_stop_after_is_kept_while_the_client_waits_out_an_outage(okta_server, tmp_path):
    """--stop_after ends the run while the client backs off from 5xx answers (its backoff goes up to 30 s a retry and
    its nine attempts take about a minute): the wait is interrupted, the run stops and says what it committed."""
    server = okta_server(make_events(10, dt.datetime.now(UTC) - dt.timedelta(hours=1), STEP))
    server.outage(503)
    lake, log = tmp_path / "lake", tmp_path / "tail.log"
    command = [sys.executable, "-m", "pipeline", "--streaming", "--source=okta", f"--okta_org_url={server.url}",
               f"--state={tmp_path / 'cursor.json'}", f"--output={lake}", "--window=2s", "--poll_interval=1s",
               "--stop_after=3s"]
    run = subprocess.Popen(command, cwd=REPO, env={**os.environ, "OKTA_API_TOKEN": TOKEN}, stdout=log.open("wb"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Generous, but well under the minute the client's retries would take without the interruption.
        run.wait(timeout=25)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    text = log.read_text()
    assert run.returncode == 0, text[-3000:]
    assert server.stats.requests >= 1 and "stopped " in text
    assert summary_check(text)["read"] == 0
