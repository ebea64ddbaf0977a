"""The audit's pieces without a server: which hours, the verdicts, the exit code, the options, the metrics file,
and what the coverage report makes of audit records."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from tests.support.helpers import SvgShapes
from tools.audit import compare, hours, metrics
from tools.audit.auditor import exit_code
from tools.audit.held import Held
from tools.audit.okta_read import OktaHour, add_page
from tools.coverage import analysis, html_report, text_report

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 20, 10, tzinfo=UTC)
H = dt.timedelta(hours=1)
ORG, HOST, OTHER = "https://acme.okta.com", "acme.okta.com", "beta.okta.com"
A, B = "personal.admin.configuration.update", "personal.user.app_migration.export"


def iso(moment: dt.datetime) -> str:
    return analysis.text(moment)


def test_hours_are_whole_utc_hours_settled_after_the_delay():
    assert hours.floor_hour(T0 + dt.timedelta(minutes=59)) == T0
    assert hours.ceil_hour(T0) == T0 and hours.ceil_hour(T0 + dt.timedelta(seconds=1)) == T0 + H
    found = hours.hours_between(T0 - dt.timedelta(minutes=30), T0 + 2 * H)
    assert found == [T0 - H, T0, T0 + H]
    ready, waiting = hours.settled(found, now=T0 + 3 * H, settle=H)
    assert ready == [T0 - H, T0, T0 + H] and waiting == []
    ready, waiting = hours.settled(found, now=T0 + 3 * H - dt.timedelta(seconds=1), settle=H)
    assert ready == [T0 - H, T0] and waiting == [T0 + H]  # ended, but not an hour ago


def test_consecutive_hours_are_one_repair_block():
    assert hours.blocks([T0 + 3 * H, T0, T0 + H, T0 + 5 * H, T0 + H]) == [
        (T0, T0 + 2 * H), (T0 + 3 * H, T0 + 4 * H), (T0 + 5 * H, T0 + 6 * H)]


def record(audited_at: str, results: dict, event_types: str = "personal.*", table=None, org=ORG) -> dict:
    return {"audit_id": f"audit-{audited_at}", "audited_at": audited_at, "org_url": org, "event_types": event_types,
            "iceberg_table": table, "hours": [{"hour": iso(h), "result": r} for h, r in results.items()]}


def test_the_newest_audit_of_the_same_selection_and_table_decides_an_hour():
    records = [record("2026-11-21T01:00:00.000Z", {T0: "missing", T0 + H: "clean"}),
               record("2026-11-21T02:00:00.000Z", {T0: "repaired"}),
               record("2026-11-21T03:00:00.000Z", {T0 + H: "missing"}, event_types="personal.user*"),
               record("2026-11-21T04:00:00.000Z", {T0 + H: "failed"}, org="https://beta.okta.com"),
               record("2026-11-21T05:00:00.000Z", {T0 + 2 * H: "clean"}, table="okta.other")]
    assert hours.latest_results(records, ORG, "personal.*") == {T0: "repaired", T0 + H: "clean", T0 + 2 * H: "clean"}
    assert hours.latest_results(records, ORG, "personal.*", "okta.events") == {}
    assert hours.latest_results(records, ORG)[T0 + H] == "missing"  # any selection: the coverage report's view


def held(rows) -> Held:
    """rows: (org, hour, type, uuid, target_index)."""
    store = Held()
    seen: dict = {}
    for org, hour, event_type, uuid, index in rows:
        store.add(event_type, {"uuid": [uuid], "target_index": [index], "published": [hour + dt.timedelta(minutes=5)],
                               "okta_org": [org]}, {hour}, seen.setdefault(event_type, set()))
    return store


def okta(uuids: dict, unreadable: int = 0) -> OktaHour:
    return OktaHour(dict(uuids), unreadable)


def test_a_verdict_names_present_missing_dead_lettered_and_unexpected_per_type():
    answer = okta({"u1": A, "u2": A, "u3": B, "u4": B, "u5": B, "u6": A})
    lake = held([(HOST, T0, A, "u1", 0), (HOST, T0, A, "u1", 1), (None, T0, B, "u3", 0),  # u3: a replay's row
                 (HOST, T0, B, "x1", 0), (OTHER, T0, B, "y1", 0),  # x1: not in Okta; y1: another org's
                 (HOST, T0, "user.session.start", "z1", 0), (HOST, T0, A, "u1", 1)])  # z1: not selected; u1 again
    dead = {"u4": {"okta_org": HOST, "stage": "flatten", "error": "target is not a list", "run_id": "r1"},
            "u5": {"okta_org": OTHER, "stage": "decode", "error": "?", "run_id": "r2"}}  # another org's: no excuse
    verdict = compare.judge(HOST, T0, answer, lake, dead=dead, selected=lambda t: t.startswith("personal."))
    found = verdict.as_dict()
    assert found["result"] == "missing" and found["okta"] == 6 and found["doubled_rows"] == 1
    assert found["types"][A]["present"] == 1 and found["types"][A]["missing_uuids"] == ["u2", "u6"]
    assert found["types"][B]["present"] == 1 and found["types"][B]["missing_uuids"] == ["u5"]
    assert found["types"][B]["dead_letters"] == [{"uuid": "u4", "stage": "flatten", "error": "target is not a list",
                                                  "run_id": "r1"}]
    assert found["types"][B]["unexpected_uuids"] == ["x1"] and found["unexpected"] == 1


def test_an_hour_is_clean_unexpected_or_repaired_and_the_table_counts_too():
    answer = okta({"u1": A})
    assert compare.judge(HOST, T0, answer, held([(HOST, T0, A, "u1", 0)])).result == "clean"
    assert compare.judge(HOST, T0, answer, held([(HOST, T0, A, "u1", 0), (HOST, T0, A, "u9", 0)])).result \
        == "unexpected"
    in_lake_only = compare.judge(HOST, T0, answer, held([(HOST, T0, A, "u1", 0)]), iceberg=held([]))
    assert in_lake_only.result == "missing" and in_lake_only.as_dict()["types"][A]["iceberg"]["missing_uuids"] == ["u1"]
    repaired = compare.judge(HOST, T0, answer, held([(HOST, T0, A, "u1", 0)]))
    repaired.repaired = 1
    assert repaired.result == "repaired"
    assert compare.failed(T0, "OktaApiError: ...").as_dict() == {"hour": iso(T0), "result": "failed",
                                                                 "error": "OktaApiError: ..."}


def test_okta_events_without_a_readable_uuid_or_type_are_counted_not_compared():
    found = OktaHour()
    add_page(found, [{"uuid": "u1", "eventType": A}, {"uuid": "u2", "eventType": "user.session.start"},
                     {"uuid": "", "eventType": A}, {"eventType": A}, {"uuid": "u3"}, 7],
             lambda t: t.startswith("personal."))
    assert found.uuids == {"u1": A} and found.unreadable == 4


def org_result(missing=0, status="audited", retryable=None, repairs=()) -> dict:
    return {"totals": {"missing": missing}, "status": status, "retryable": retryable, "repairs": list(repairs)}


@pytest.mark.parametrize("orgs,code", [
    ([org_result()], 0),
    ([org_result(missing=1), org_result(status="failed", retryable=True)], 1),
    ([org_result(), org_result(status="failed", retryable=True)], 75),
    ([org_result(status="failed", retryable=True), org_result(status="failed", retryable=False)], 1),
    ([org_result(repairs=[{"exit_code": 75}])], 75),
    ([org_result(repairs=[{"exit_code": 0}])], 0),
])
def test_the_exit_code(orgs, code):
    assert exit_code(orgs) == code


@pytest.fixture
def lake(tmp_path, monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", "00-unit-token-value")
    (tmp_path / "lake").mkdir()
    return str(tmp_path / "lake")


def resolve(*args, now=T0 + 5 * H):
    from tools.audit.settings import resolve as resolve_options

    return resolve_options(list(args), now=now)


def test_options_become_settings_and_the_repairs_flags(lake):
    settings, problems = resolve(f"--output={lake}", f"--okta_org_url={ORG}", "--since=3h",
                                 "--until=2026-11-20T13:30:00Z", "--okta_rate_share=0.5", "--raw_event=false",
                                 "--iceberg_table=okta.events", "--s3_region_name=eu-west-1")
    assert not problems
    assert (settings.since, settings.until) == (T0 + 2 * H, T0 + 4 * H)  # widened to whole hours
    assert settings.okta.org.rate_share == 0.5 and settings.okta.org.filter == 'eventType sw "personal."'
    assert set(settings.repair_flags) == {f"--output={lake}", f"--okta_org_url={ORG}", "--okta_rate_share=0.5",
                                          "--raw_event=false", "--iceberg_table=okta.events"}
    assert settings.storage_flags == ("--s3_region_name=eu-west-1",) and settings.audit_id.startswith("audit-")


@pytest.mark.parametrize("args,problem", [
    ((), "--since"),
    (("--since=100d",), "more than 90 days back"),
    (("--since=3h", "--state=x.json"), "--state and --lookback are an incremental run's"),
    (("--since=3h", "--settle=soon"), "--settle must be a duration"),
    (("--since=3h", "--okta_org=acme.okta.com"), "--okta_org is for --source=file"),
    (("--since=3h", "--okta_tokn_file", "00-secret-value"), "did you mean --okta_token_file"),
    (("--since=3h", "--until=4h"), "--until must be after --since"),
])
def test_bad_options_are_refused_with_one_line_each(lake, args, problem, capsys):
    from tools.audit.cli import main

    assert main([f"--output={lake}", f"--okta_org_url={ORG}", *args]) == 2
    err = capsys.readouterr().err
    assert problem in err and "00-secret-value" not in err


def test_a_missing_lake_and_a_repair_without_the_pipeline_are_refused(lake, capsys):
    from tools.audit.cli import main

    assert main([f"--output={lake}/nope", f"--okta_org_url={ORG}", "--since=3h"]) == 2
    assert main([f"--output={lake}", f"--okta_org_url={ORG}", "--since=3h", "--repair"]) == 2
    err = capsys.readouterr().err
    assert "no such lake" in err and "--repair runs the pipeline" in err


def audit_result(hours_list, skipped=(), not_settled=(), status="audited", audited_at="2026-11-20T16:00:00.000Z"):
    return {"audit_id": "audit-1", "lake": "lake", "iceberg_table": None, "settle": "1h",
            "requested": {"since": iso(T0), "until": iso(T0 + 4 * H)},
            "orgs": [{"org_url": ORG, "org": HOST, "event_types": "personal.*", "iceberg_table": None,
                      "audited_at": audited_at, "status": status, "error": None, "retryable": None,
                      "requested": {"since": iso(T0), "until": iso(T0 + 4 * H)},
                      "okta": {"requests": 3, "seconds": 1.5, "requests_per_day": 24.0, "pages": 3, "retries": 0,
                               "throttled": 0},
                      "totals": {"missing": 2, "unexpected": 1, "repaired": 0, "dead_lettered": 0, "hours_audited": 3,
                                 "clean": 1, "missing_hours": 1, "repaired_hours": 0, "unexpected_hours": 0,
                                 "okta_events": 5},
                      "skipped_clean": list(skipped), "not_settled": list(not_settled), "repairs": [],
                      "hours": hours_list}]}


def test_the_metrics_file_holds_each_series_of_each_org():
    found = [{"hour": iso(T0), "result": "clean"}, {"hour": iso(T0 + H), "result": "missing"},
             {"hour": iso(T0 + 2 * H), "result": "failed"}]
    result = audit_result(found, not_settled=[iso(T0 + 3 * H)])
    text = metrics.render(result, previous=[]).decode()
    names = {line.split("{")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert names == metrics.exported_names()
    assert f'okta_personal_audit_missing_events{{org="{HOST}"}} 2.0' in text
    assert f'okta_personal_audit_hours{{org="{HOST}",result="failed"}} 1.0' in text
    readings = metrics.org_readings(result["orgs"][0], previous=[])
    assert readings["audited_until_seconds"] == (T0 + 2 * H).timestamp()
    assert readings["oldest_unaudited_hour_seconds"] == (T0 + 2 * H).timestamp()  # the failed hour
    earlier = record("2026-11-20T15:00:00.000Z", {T0 + 2 * H: "clean"})
    assert math.isnan(metrics.org_readings(result["orgs"][0], previous=[earlier])["oldest_unaudited_hour_seconds"])


def test_the_text_report_names_the_hours_types_and_counts():
    from tools.audit.text_report import render_text

    missing = {"hour": iso(T0 + H), "result": "missing", "repaired": 0, "unreadable": 0, "doubled_rows": 0,
               "types": {A: {"okta": 4, "present": 2, "missing": 2, "unexpected": 1, "dead_lettered": 0,
                             "missing_uuids": ["u1", "u2"], "unexpected_uuids": ["x1"], "dead_letters": []}}}
    clean = {"hour": iso(T0), "result": "clean", "repaired": 0, "unreadable": 0, "doubled_rows": 0, "types": {}}
    text = render_text(audit_result([clean, missing], skipped=[iso(T0 + 2 * H)]))
    assert f"MISSING     [{iso(T0 + H)} +1h)  {A}: 2 of 4 not in the lake: u1, u2" in text
    assert f"UNEXPECTED  [{iso(T0 + H)} +1h)  {A}: 1 in the lake, not returned by Okta (kept): x1" in text
    assert f"clean       [{iso(T0)}, {iso(T0 + H)})  1h" in text and "skipped     1 hours" in text
    assert "3 Okta requests (24 per audited day)" in text


def test_coverage_shows_each_hours_newest_audit_and_whether_a_span_is_covered_and_audited():
    manifests = [{"run_id": "b1", "okta_org_url": ORG, "since": iso(T0), "until": iso(T0 + 3 * H), "partitions": []}]
    audits = [{**record("2026-11-20T15:00:00.000Z", {T0: "clean", T0 + H: "missing"}), "audit_id": "a1"},
              {**record("2026-11-20T16:00:00.000Z", {T0 + H: "repaired", T0 + 2 * H: "unexpected"}),
               "audit_id": "a2"}]
    [org] = analysis.analyse({"manifests": manifests, "audits": audits}, None, T0, T0 + 3 * H)
    shown = org.as_dict()
    assert [(a["hour"], a["result"], a["audit_id"]) for a in shown["audited"]] == [
        (iso(T0), "clean", "a1"), (iso(T0 + H), "repaired", "a2"), (iso(T0 + 2 * H), "unexpected", "a2")]
    [span] = shown["covered"]
    assert span["audit"]["verdict"] == "partly" and span["audit"]["unexpected"] == 1 and span["audit"]["clean"] == 1
    page = html_report.render_html({"lake": "lake", "requested": {"since": iso(T0), "until": iso(T0 + 3 * H)},
                                     "generated_at": iso(T0), "gaps_in_requested_range": 0, "orgs": [shown],
                                     "events_per_hour_source": "not counted"})
    drawn = SvgShapes()
    drawn.feed(page)
    assert [(r["data-hour"], r["data-result"]) for r in drawn.shapes["audited"]] == [
        (a["hour"], a["result"]) for a in shown["audited"]]
    assert "audited: 2 of 3 hours clean, 1 unexpected" in text_report.audit_note(span["audit"])


def test_a_many_org_backfill_covers_each_org_whose_source_finished():
    manifest = {"run_id": "m1", "since": iso(T0), "until": iso(T0 + H), "partitions": [],
                "org_sources": [{"org": HOST, "okta": f"{ORG} (SSWS token, rate share 1)"},
                                {"org": OTHER, "okta": "https://beta.okta.com (SSWS token, rate share 1)"}],
                "orgs": {HOST: {"status": "ok"}, OTHER: {"status": "failed", "error": "HTTP 503"}}}
    found = {o.org_url: o for o in analysis.analyse({"manifests": [manifest]}, None, T0, T0 + H)}
    assert list(found) == [ORG] and found[ORG].gaps == []
