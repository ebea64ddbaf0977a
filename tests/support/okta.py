"""Helpers for tests against the local System Log server: events made from the real fixtures, servers, the lake."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import uuid as uuidlib
from collections import Counter
from pathlib import Path

import pytest

from tests.support.helpers import PERSONAL_TYPES, read_lake, real_events
from tests.support.reference import Reject, expected_rows

UTC = dt.timezone.utc
TOKEN = "00-test-ssws-Tk9QRS1TRUNSRVQtdG9rZW4"  # recognisable: grep for it in anything a run writes


def iso(moment: dt.datetime) -> str:
    """Okta's published format, millisecond precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def recent_start(hours_back: float = 6) -> dt.datetime:
    """A whole minute some hours back (inside Okta's retention and the default lookback)."""
    return (dt.datetime.now(UTC) - dt.timedelta(hours=hours_back)).replace(second=0, microsecond=0)


def valid_templates() -> list[dict]:
    """The real events that flatten cleanly (the rest are the spine's dead-letter tests' business)."""
    templates = []
    for event in real_events():
        candidate = {**event, "uuid": "00000000-0000-0000-0000-000000000001", "published": "2026-01-01T00:00:00.000Z",
                     "eventType": PERSONAL_TYPES[0]}
        try:
            expected_rows(candidate)
        except Reject:
            continue
        templates.append(event)
    return templates


def make_events(count: int, start: dt.datetime, step: dt.timedelta, personal_every: int = 2,
                salt: int = 0) -> list[dict]:
    """``count`` copies of the real events, published ``start + i*step``; every ``personal_every``-th is personal."""
    real = valid_templates()
    events = []
    for i in range(count):
        event = dict(real[i % len(real)])
        event["uuid"] = str(uuidlib.UUID(int=(salt << 64) + i + 1))
        event["published"] = iso(start + i * step)
        if i % personal_every == 0:
            event["eventType"] = PERSONAL_TYPES[(i // personal_every) % 2]
        events.append(event)
    return events


def personal(events: list[dict]) -> list[dict]:
    return [e for e in events if str(e.get("eventType", "")).startswith("personal.")]


def lake_row_keys(lake: Path) -> Counter:
    """(uuid, target_index) -> how many times the lake holds that row."""
    if not Path(lake).exists():
        return Counter()
    return Counter((row["uuid"], row["target_index"]) for row in read_lake(lake))


def expected_row_keys(events: list[dict]) -> Counter:
    return Counter((row["uuid"], row["target_index"]) for e in personal(events) for row in expected_rows(e))


def assert_lake_exact(lake: Path, events: list[dict]) -> None:
    """The lake holds every row of the personal events exactly once, and nothing else; rows match the reference."""
    got, want = lake_row_keys(lake), expected_row_keys(events)
    doubled = [key for key, n in got.items() if n > 1]
    assert not doubled, f"{len(doubled)} rows are in the lake more than once, e.g. {doubled[:3]}"
    missing, extra = set(want) - set(got), set(got) - set(want)
    assert not missing and not extra, f"missing {len(missing)} rows (e.g. {sorted(missing)[:3]}), extra {len(extra)}"
    by_key = {(e["uuid"], r["target_index"]): r for e in personal(events) for r in expected_rows(e)}
    for row in read_lake(lake):
        expected = by_key[(row["uuid"], row["target_index"])]
        for column in ("event_type", "published", "actor_id", "target_id", "client_ip_address", "outcome_result"):
            if column in expected:
                assert row[column] == expected[column], (column, row["uuid"], row[column], expected[column])


def backfill_args(*extra: str, org: str = "https://acme.okta.com", output: str = "gs://okta-lake-test/lake"):
    """Options of a one-hour backfill that ended an hour ago (valid against --since's 180-day limit)."""
    until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    return ["--source=okta", f"--okta_org_url={org}", f"--since={iso(until - dt.timedelta(hours=1))}",
            f"--until={iso(until)}", f"--output={output}", *extra]


def wait_for_lake(lake: Path, events: list[dict], process: subprocess.Popen, log: Path, timeout: float = 150) -> None:
    """Until the lake holds every row of ``events`` (and the run is alive), or fail with the log."""
    want = expected_row_keys(events)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the streaming run exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if set(want) <= set(lake_row_keys(lake)):
                return
        except Exception:  # noqa: BLE001 - a file being renamed while listed; look again
            pass
        time.sleep(0.5)
    got = lake_row_keys(lake)
    pytest.fail(f"after {timeout} s the lake has {len(set(want) & set(got))} of {len(want)} rows:\n"
                f"{log.read_text()[-3000:]}")
