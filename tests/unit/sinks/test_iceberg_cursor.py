"""The Okta cursor in Iceberg snapshot summaries: what a restart without --state resumes from (no servers)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pytest

from sinks.iceberg import cursor as iceberg_cursor
from sinks.iceberg.settings import IcebergTarget
from sources.okta import polling as okta_polling
from sources.okta import state as okta_state
from sources.okta.connect import OktaSettings
from sources.okta.state import CursorState
from tests.support.helpers import run_pipeline

ACME, OTHER = "https://acme.okta.com", "https://other.okta.com"
FILTER = 'eventType sw "personal."'


@dataclass
class Summary:
    additional_properties: dict


@dataclass
class Snapshot:
    snapshot_id: int
    sequence_number: int
    summary: Summary = field(default_factory=lambda: Summary({}))
    timestamp_ms: int = 0


class Table:
    def __init__(self, *summaries: dict | None):
        self._snapshots = [Snapshot(i, i, Summary(s or {}), 1000 * i) for i, s in enumerate(summaries, start=1)]

    def snapshots(self):
        return list(reversed(self._snapshots))  # order must not matter


def batch(org: str, after: str, filter: str = FILTER) -> dict:
    states = [CursorState(org, filter, f"{org}/api/v1/logs?after={after}")]
    return {"okta-lake.cursor": iceberg_cursor.cursor_text(states), "okta-lake.run-id": f"run-{after}"}


def window(org: str, after: str) -> dict:  # the tail records the bare next link (its filter is a parameter)
    return {"okta-lake.cursor": f"{org}/api/v1/logs?filter=eventType+sw+%22personal.%22&after={after}"}


def test_the_newest_cursor_of_the_org_and_filter_is_found_in_either_form():
    table = Table(batch(ACME, "1"), window(ACME, "2"), batch(OTHER, "9"), None, batch(ACME, "x", filter=""))
    found = iceberg_cursor.recorded_cursor(table, ACME, FILTER)
    assert found.next_url.endswith("after=2") and found.snapshot_id == 2
    assert iceberg_cursor.recorded_cursor(table, OTHER, FILTER).run_id == "run-9"
    assert iceberg_cursor.recorded_cursor(table, ACME, "").next_url.endswith("after=x")
    assert iceberg_cursor.recorded_cursor(table, "https://new.okta.com", FILTER) is None
    # The newest snapshot of each org and filter survives expiry; the compaction without a cursor does not matter.
    assert iceberg_cursor.keep_ids(table) == {2, 3, 5}


def test_a_many_org_run_records_each_orgs_cursor():
    states = [("a.json", CursorState(ACME, FILTER, f"{ACME}/api/v1/logs?after=a")),
              ("b.json", CursorState(OTHER, FILTER, f"{OTHER}/api/v1/logs?after=b"))]
    text = iceberg_cursor.cursor_text(states)
    assert [c["org_url"] for c in json.loads(text)["orgs"]] == [ACME, OTHER]
    table = Table({"okta-lake.cursor": text})
    assert iceberg_cursor.recorded_cursor(table, OTHER, FILTER).next_url.endswith("after=b")
    assert iceberg_cursor.parse("not json {") == [{"next_url": "not json {"}] and iceberg_cursor.parse("{x") == []


@pytest.fixture
def settings():
    return OktaSettings(org_url=ACME, filter=FILTER)


def test_the_tables_cursor_wins_over_a_differing_state_file(settings, tmp_path, monkeypatch, caplog):
    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "wh"))
    recorded = iceberg_cursor.RecordedCursor(f"{ACME}/api/v1/logs?after=table", 7, 1_700_000_000_000, "run-t")
    monkeypatch.setattr(iceberg_cursor, "table_cursor", lambda t, org, f: recorded if t == target else None)
    state = tmp_path / "cursor.json"
    okta_state.store(str(state), CursorState(ACME, FILTER, f"{ACME}/api/v1/logs?after=state"))
    start = okta_polling.starting_point(None, settings, str(state), dt.timedelta(days=1), target)
    assert start.url.endswith("after=table") and start.previous.run_id == "run-t"
    assert "resuming from the table's" in caplog.text
    start = okta_polling.starting_point(None, settings, None, dt.timedelta(days=1), target)  # no --state
    assert start.url.endswith("after=table")
    monkeypatch.setattr(iceberg_cursor, "table_cursor", lambda *a: None)  # the table records none yet
    assert okta_polling.starting_point(None, settings, str(state), dt.timedelta(days=1), target).url.endswith(
        "after=state")


@pytest.mark.parametrize("args, message", [
    (["--source=okta"], "or --state or --iceberg_table"),
    (["--source=okta", "--streaming"], "needs --state (or --iceberg_table"),
])
def test_state_is_optional_only_with_an_iceberg_table(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("OKTA_API_TOKEN", "x")
    run = run_pipeline(f"--output={tmp_path}", "--okta_org_url=https://acme.okta.com", *args)
    assert run.code == 2 and message in run.stderr, run.stderr


def test_many_orgs_still_need_their_state_files(tmp_path, monkeypatch):
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps({"orgs": [{"url": ACME, "token_env": "T_A"}]}))
    monkeypatch.setenv("T_A", "x")
    run = run_pipeline(f"--output={tmp_path}", "--source=okta", f"--orgs={orgs}", "--iceberg_table=okta.events")
    assert run.code == 2 and "--iceberg_table alone is not enough with --orgs" in run.stderr, run.stderr
