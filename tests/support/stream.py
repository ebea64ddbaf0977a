"""Streaming runs in tests: start one as a process, read its JSON log and its metrics, feed Pub/Sub."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import REPO
from tests.support.okta import make_events

STEP = dt.timedelta(seconds=1)
UTC = dt.timezone.utc


def start_stream(*args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline", "--streaming", *args]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def tail_args(server, lake: Path, state: Path) -> list[str]:
    return ["--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
            "--window=3s", "--poll_interval=1s", "--lookback=1d"]


def loop_settings(subscription: str, lake: Path, window: float):
    """Settings for driving the local Pub/Sub loop (sources/pubsub_loop.py) in this process."""
    from streaming.settings import PubSubSettings
    from tests.support.helpers import window_settings

    return PubSubSettings(subscription=subscription, window=window_settings(lake, job="loop-test", length=window,
                                                                           raw_event=False))


def publish_events(pubsub_emulator, name: str, count: int):
    """A fresh subscription holding ``count`` one-event messages; returns (subscription, events)."""
    publisher, subscription = pubsub_emulator.topic_and_subscription(name)
    events = make_events(count, dt.datetime.now(UTC) - dt.timedelta(hours=2), STEP)
    for event in events:
        publisher(json.dumps(event).encode(), {})
    return subscription, events


def json_log(log: Path) -> list[dict]:
    """Every line of the run's stderr, each parsed as one JSON object (fails on any other line)."""
    records = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"line {number} of the log is not JSON: {line[:200]!r}")
    return records


def endpoint(log: Path, run, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            pytest.fail(f"the run exited with {run.returncode}:\n{log.read_text()[-3000:]}")
        for record in json_log(log) if log.exists() else []:
            found = re.search(r"metrics: (http://127\.0\.0\.1:\d+)/metrics", record["message"])
            if found:
                return found.group(1)
        time.sleep(0.2)
    pytest.fail(f"no metrics endpoint announced:\n{log.read_text()[-3000:]}")


def scrape(base: str, org: str = "") -> dict[str, float]:
    """Sample name (labels folded in when not just org) -> value; every sample labelled ``org`` when given."""
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "org"}
            key = sample.name + ("" if not labels else str(sorted(labels.items())))
            values[key] = sample.value
            assert not org or sample.labels.get("org") == org  # the okta_org of the org's rows
    return values


def health(base: str) -> int:
    try:
        return urllib.request.urlopen(base + "/healthz", timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def window_totals(records: list[dict]) -> tuple[int, int, int]:
    """(rows, events, windows) summed from the run's window lines."""
    rows = events = windows = 0
    for record in records:
        found = re.match(r"window .*: read [\d,]+, wrote ([\d,]+) rows \(([\d,]+) events\)", record["message"])
        if found:
            rows += int(found.group(1).replace(",", ""))
            events += int(found.group(2).replace(",", ""))
            windows += 1
    return rows, events, windows
