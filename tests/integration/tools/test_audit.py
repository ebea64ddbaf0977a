"""``okta-personal-lake audit`` against the local System Log server: what Okta holds for closed hours is in the lake.

The acceptance stories: an hour left out by a narrow backfill and a lake file deleted by hand, events Okta
persisted behind the tail's cursor, events in the lake Okta does not return, many orgs with one down, the
rate share, an Iceberg table behind the lake. Each audit names exactly the missing uuids by hour and type
and exits 1; ``--repair`` adds exactly them through a backfill (run kind repair); the next audit exits 0;
nothing is duplicated (DuckDB, the README's query).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.helpers import SvgShapes, run_pipeline
from tests.support.okta import TOKEN, assert_lake_exact, iso, make_events, personal, recent_start

HOUR = dt.timedelta(hours=1)
STEP = dt.timedelta(seconds=30)  # 120 events an hour, 60 of them personal (30 of each type)
pytestmark = pytest.mark.usefixtures("okta_token_env")


def command(*args: str) -> tuple[int, str, str]:
    """``okta-personal-lake ARGS`` in this process (the audit's repair runs the pipeline here too)."""
    from tools.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def audit(lake: Path, org: str, since: dt.datetime, until: dt.datetime, *extra: str) -> tuple[int, dict]:
    code, out, err = command("audit", f"--output={lake}", f"--okta_org_url={org}", f"--since={iso(since)}",
                             f"--until={iso(until)}", "--format=json", *extra)
    assert TOKEN not in out + err
    assert code != 2, err
    return code, json.loads(out)


def backfill(server, lake: Path, since: dt.datetime, until: dt.datetime, *extra: str):
    run = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--since={iso(since)}",
                       f"--until={iso(until)}", f"--output={lake}", *extra)
    assert run.code == 0, run.stderr
    return run


def missing_by_hour(org: dict) -> dict:
    """(hour, event type) -> the missing uuids, from the audit's JSON."""
    return {(h["hour"], name): set(t["missing_uuids"]) for h in org["hours"] if h["result"] != "failed"
            for name, t in h["types"].items() if t["missing_uuids"]}


def expected(events: list[dict]) -> dict:
    """(hour, event type) -> uuids of the personal events."""
    found: dict = {}
    for event in personal(events):
        hour = event["published"][:13] + ":00:00.000Z"
        found.setdefault((hour, event["eventType"]), set()).add(event["uuid"])
    return found


def no_duplicates(lake: Path) -> None:
    """The README's DuckDB query: every partition's rows and distinct events; no row twice."""
    import duckdb

    files = str(lake / "event_date=*" / "event_type=*" / "*.parquet")
    rows = duckdb.connect().execute(
        "SELECT event_type, event_date, count(*) AS rows, count(DISTINCT uuid) AS events, "
        "count(DISTINCT (uuid, target_index)) AS distinct_rows "
        f"FROM read_parquet('{files}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows and all(r[2] == r[4] for r in rows), rows


def test_an_hour_left_out_and_a_deleted_file_are_named_repaired_exactly_and_clean_after(okta_server, tmp_path):
    start = recent_start(hours_back=5).replace(minute=0)
    events = make_events(360, start, STEP)
    server = okta_server(events)
    lake = tmp_path / "lake"
    backfill(server, lake, start, start + HOUR)
    third = backfill(server, lake, start + 2 * HOUR, start + 3 * HOUR, "--run_id=third-hour")  # the 2nd hour left out
    deleted = sorted(lake.glob("event_date=*/event_type=*/part-third-hour-*.parquet"))[0]
    gone = set(pq.read_table(deleted, columns=["uuid"]).column("uuid").to_pylist())
    deleted.unlink()  # by hand
    assert third.count("events written") == 60 and len(gone) == 30
    want = expected(events)
    second, third_hour = iso(start + HOUR), iso(start + 2 * HOUR)
    gone_type = deleted.parent.name.split("=", 1)[1]

    code, result = audit(lake, server.url, start, start + 3 * HOUR, f"--metrics_file={tmp_path}/audit.prom")
    assert code == 1
    [org] = result["orgs"]
    assert [h["result"] for h in org["hours"]] == ["clean", "missing", "missing"]
    assert missing_by_hour(org) == {**{k: v for k, v in want.items() if k[0] == second},
                                    (third_hour, gone_type): gone}
    assert org["totals"]["missing"] == 90 and org["totals"]["unexpected"] == 0
    assert org["okta"]["requests"] == 3 and org["okta"]["requests_per_day"] == 24
    assert f'okta_personal_audit_missing_events{{org="{org["org"]}"}} 90.0' in (tmp_path / "audit.prom").read_text()

    # The coverage page: the hole is a gap, and the audited lane marks both hours with missing events.
    code, page, _ = command("coverage", f"--output={lake}", f"--since={iso(start)}", f"--until={iso(start + 3 * HOUR)}",
                            "--format=html")
    drawn = SvgShapes()
    drawn.feed(page)
    assert {r["data-hour"]: r["data-result"] for r in drawn.shapes["audited"]} == {
        iso(start): "clean", second: "missing", third_hour: "missing"}
    assert {r["data-hour"]: int(r["data-missing"]) for r in drawn.shapes["audited"]}[second] == 60

    code, result = audit(lake, server.url, start, start + 3 * HOUR, "--repair")
    assert code == 0
    [org] = result["orgs"]
    assert [(h["result"], h["repaired"]) for h in org["hours"]] == [("clean", 0), ("repaired", 60), ("repaired", 30)]
    [run] = org["repairs"]  # the two hours are consecutive: one backfill of exactly them
    assert (run["since"], run["until"], run["exit_code"]) == (second, iso(start + 3 * HOUR), 0)
    manifest = json.loads((lake / "_runs" / f"{run['run_id']}.json").read_text())
    assert manifest["run_kind"] == "repair" and manifest["counts"]["events_written"] == 90
    assert manifest["counts"]["duplicates_in_lake"] == 30  # the third hour's other type was there already

    code, result = audit(lake, server.url, start, start + 3 * HOUR)
    assert code == 0 and [h["result"] for h in result["orgs"][0]["hours"]] == ["clean"] * 3
    assert_lake_exact(lake, events)
    no_duplicates(lake)

    # A scheduled audit skips what is clean: no request at all now; the coverage says covered and audited.
    before = server.stats.requests
    code, result = audit(lake, server.url, start, start + 3 * HOUR, "--skip_clean")
    assert code == 0 and server.stats.requests == before and len(result["orgs"][0]["skipped_clean"]) == 3
    code, text, _ = command("coverage", f"--output={lake}", f"--since={iso(start)}", f"--until={iso(start + 3 * HOUR)}")
    assert code == 0 and "covered and audited: 3 of 3 hours clean" in text


def test_events_okta_persisted_behind_the_tails_cursor_are_found_and_repaired(okta_server, tmp_path):
    start = recent_start(hours_back=4).replace(minute=0)
    events = make_events(120, start, STEP)
    server = okta_server(events)
    lake, state = tmp_path / "lake", tmp_path / "cursor.json"
    incremental = ("--source=okta", f"--okta_org_url={server.url}", f"--state={state}", f"--output={lake}",
                   "--lookback=1d")
    assert run_pipeline(*incremental).code == 0
    # Events of that hour show up now, persisted (by Okta's clock) at a time the polling chain has passed: the
    # incremental chain never sees them; only a bounded read of the hour does.
    late = make_events(20, start + 10 * STEP, STEP, salt=5)
    server.append(late, persisted_at=start + HOUR / 2)
    again = run_pipeline(*incremental)
    assert again.code == 0 and again.count("events read") == 0

    code, result = audit(lake, server.url, start, start + HOUR)
    assert code == 1
    assert missing_by_hour(result["orgs"][0]) == expected(late)
    code, result = audit(lake, server.url, start, start + HOUR, "--repair")
    assert code == 0 and result["orgs"][0]["totals"]["repaired"] == 10
    assert audit(lake, server.url, start, start + HOUR)[0] == 0
    assert_lake_exact(lake, events + late)


def test_events_the_lake_holds_that_okta_does_not_return_are_unexpected_and_kept(okta_server, tmp_path):
    start = recent_start(hours_back=3).replace(minute=0)
    server = okta_server(make_events(60, start, STEP))
    lake = tmp_path / "lake"
    backfill(server, lake, start, start + HOUR)
    committed = sorted(lake.glob("event_date=*/event_type=*/*.parquet"))[0]
    table = pq.read_table(committed)
    strangers = [f"stranger-{i}" for i in range(table.num_rows)]
    foreign = committed.parent / "part-by-hand.parquet"  # e.g. a run pointed at the wrong org, copied in
    pq.write_table(table.set_column(table.schema.get_field_index("uuid"), "uuid", pa.array(strangers)), foreign)

    code, result = audit(lake, server.url, start, start + HOUR, "--repair")
    assert code == 0  # nothing missing: unexpected events are reported, not failed
    [hour] = result["orgs"][0]["hours"]
    assert hour["result"] == "unexpected" and hour["missing"] == 0 and result["orgs"][0]["repairs"] == []
    assert set(hour["types"][committed.parent.name.split("=", 1)[1]]["unexpected_uuids"]) == set(strangers)
    assert foreign.exists() and pq.read_table(foreign).num_rows == len(strangers)  # never deleted


def orgs_file(tmp_path: Path, servers: dict, monkeypatch) -> Path:
    entries = []
    for name, server in servers.items():
        monkeypatch.setenv(f"TOKEN_{name.upper()}", TOKEN)
        entries.append({"url": server.url, "token_env": f"TOKEN_{name.upper()}"})
    path = tmp_path / "orgs.json"
    path.write_text(json.dumps({"orgs": entries}))
    return path


@pytest.mark.usefixtures("fast_retries")
def test_many_orgs_one_down_is_reported_for_that_org_and_the_others_are_audited(okta_server, tmp_path, monkeypatch):
    start = recent_start(hours_back=3).replace(minute=0)
    up = okta_server(make_events(120, start, STEP))
    down = okta_server(make_events(120, start, STEP, salt=9))
    orgs = orgs_file(tmp_path, {"up": up, "down": down}, monkeypatch)
    lake = tmp_path / "lake"
    run = run_pipeline("--source=okta", f"--orgs={orgs}", f"--since={iso(start)}", f"--until={iso(start + HOUR)}",
                       f"--output={lake}")
    assert run.code == 0, run.stderr
    down.outage(503)

    code, out, err = command("audit", f"--output={lake}", f"--orgs={orgs}", f"--since={iso(start)}",
                             f"--until={iso(start + HOUR)}", "--format=json")
    assert code == 75, err  # nothing missing where Okta answered; the org that did not may answer later
    assert TOKEN not in out + err
    by_org = {o["org_url"]: o for o in json.loads(out)["orgs"]}
    assert by_org[up.url]["status"] == "audited" and by_org[up.url]["totals"]["clean"] == 1
    assert by_org[up.url]["totals"]["unexpected"] == 0  # the other org's rows of that hour are not this org's
    assert by_org[down.url]["status"] == "failed" and by_org[down.url]["retryable"]
    assert "HTTP 503" in by_org[down.url]["error"] and by_org[down.url]["hours"][0]["result"] == "failed"
    records = list((lake / "_runs" / "audits").glob("*.json"))
    assert len(records) == 2 and all(TOKEN not in r.read_text() for r in records)

    # The coverage report knows the many-org backfill covered both, and shows each org's audited hour.
    code, out, _ = command("coverage", f"--output={lake}", f"--since={iso(start)}", f"--until={iso(start + HOUR)}",
                           "--format=json")
    covered = {o["org_url"]: o for o in json.loads(out)["orgs"]}
    assert code == 0 and all(o["gaps"] == [] for o in covered.values())
    assert [a["result"] for a in covered[up.url]["audited"]] == ["clean"]
    assert [a["result"] for a in covered[down.url]["audited"]] == ["failed"]


def test_the_audit_stays_within_its_rate_share_and_says_what_a_day_costs(okta_server, tmp_path):
    start = recent_start(hours_back=8).replace(minute=0)
    server = okta_server(make_events(6 * 12, start, 10 * STEP), rate_limit=6, rate_window_seconds=1)
    lake = tmp_path / "lake"
    lake.mkdir()
    code, result = audit(lake, server.url, start, start + 6 * HOUR, "--okta_rate_share=0.5")
    assert code == 1  # an empty lake: everything is missing
    records = server.stats.records
    assert 429 not in [r.status for r in records]
    per_window = Counter(r.window for r in records)
    assert max(per_window.values()) <= 3, per_window  # half of 6 per window; the rest is left to others
    okta = result["orgs"][0]["okta"]
    assert okta["requests"] == len(records) == 6 and okta["requests_per_day"] == 24
    code, text, _ = command("audit", f"--output={lake}", f"--okta_org_url={server.url}", f"--since={iso(start)}",
                            f"--until={iso(start + HOUR)}")
    assert "1 Okta requests (24 per audited day)" in text


def test_an_iceberg_table_behind_the_lake_is_audited_and_repaired_too(okta_server, tmp_path):
    start = recent_start(hours_back=4).replace(minute=0)
    events = make_events(240, start, STEP)
    server = okta_server(events)
    lake = tmp_path / "lake"
    backfill(server, lake, start, start + HOUR, "--iceberg_table=okta.events")
    backfill(server, lake, start + HOUR, start + 2 * HOUR)  # the lake only

    code, result = audit(lake, server.url, start, start + 2 * HOUR, "--iceberg_table=okta.events", "--repair")
    assert code == 0
    first, second = result["orgs"][0]["hours"]
    assert first["result"] == "clean" and second["result"] == "repaired" and second["repaired"] == 60
    assert all(t["present"] == 30 and t["iceberg"]["missing"] == 0 for t in second["types"].values())
    code, result = audit(lake, server.url, start, start + 2 * HOUR, "--iceberg_table=okta.events")
    assert code == 0
    from tests.support.iceberg import lake_table_keys
    from tests.support.okta import expected_row_keys

    assert lake_table_keys(lake) == expected_row_keys(events)  # every row once


def test_an_audit_of_hours_not_settled_yet_asks_nothing(okta_server, tmp_path):
    server = okta_server(make_events(10, recent_start(hours_back=0.5), STEP))
    lake = tmp_path / "lake"
    lake.mkdir()
    now = dt.datetime.now(dt.timezone.utc)
    code, result = audit(lake, server.url, now - 2 * HOUR + dt.timedelta(minutes=1), now, "--settle=2h")
    assert code == 0 and server.stats.requests == 0
    assert result["orgs"][0]["hours"] == [] and len(result["orgs"][0]["not_settled"]) >= 2
