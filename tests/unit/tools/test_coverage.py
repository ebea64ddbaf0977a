"""The coverage report's arithmetic on synthetic run records: spans, unions, gaps, chain links and breaks."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.support.helpers import SvgShapes
from tools.coverage import analysis, cli, html_report

ORG = "https://acme.okta.com"
T0 = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)


def at(hours: float) -> str:
    return analysis.text(T0 + dt.timedelta(hours=hours))


def backfill(run: str, since: float, until: float, org: str = ORG) -> dict:
    return {"run_id": run, "source": "okta", "okta": f"{org} (SSWS token, rate share 1)", "since": at(since),
            "until": at(until), "partitions": []}


def link(run: str, since: float | None, until: float, cursor_from: str, cursor_to: str, kind: str = "incremental",
         started_at: float | None = None) -> dict:
    return {"kind": kind, "run_id": run, "org_url": ORG, "cursor_from": cursor_from, "cursor_to": cursor_to,
            "started_from": "cursor" if cursor_from else "lookback",
            "span_since": "" if since is None else at(since), "span_until": at(until), "stored_at": at(until),
            "started_at": at(started_at) if started_at is not None else ""}


def analyse(manifests=(), links=(), failed=(), since=None, until=None):
    records = {"manifests": list(manifests), "cursors": list(links), "windows": [], "failed": list(failed)}
    [org] = analysis.analyse(records, None, None if since is None else T0 + dt.timedelta(hours=since),
                             None if until is None else T0 + dt.timedelta(hours=until))
    return org.as_dict()


def spans(items) -> list[tuple[str, str]]:
    return [(i["since"], i["until"]) for i in items]


def test_backfills_that_tile_a_range_leave_no_gap():
    org = analyse([backfill("a", 0, 1), backfill("b", 1, 2), backfill("c", 2, 5)], since=0, until=5)
    assert spans(org["covered"]) == [(at(0), at(5))] and org["gaps"] == []


def test_a_hole_between_backfills_is_exactly_the_gap():
    org = analyse([backfill("a", 0, 1), backfill("b", 2, 3)], since=0, until=3)
    assert spans(org["gaps"]) == [(at(1), at(2))] and org["gaps"][0]["seconds"] == 3600


def test_overlapping_backfills_merge_and_the_requested_edges_count():
    org = analyse([backfill("a", 1, 3), backfill("b", 2, 4)], since=0, until=6)
    assert spans(org["covered"]) == [(at(1), at(4))]
    assert spans(org["gaps"]) == [(at(0), at(1)), (at(4), at(6))]


def test_without_a_requested_range_only_holes_between_spans_are_gaps():
    org = analyse([backfill("a", 0, 1), backfill("b", 3, 4)])
    assert spans(org["gaps"]) == [(at(1), at(3))]


def test_an_incremental_chain_is_continuous():
    chain = [link("r1", 0, 1, "", "c1"), link("r2", 1, 2, "c1", "c2"), link("r3", 2, 3, "c2", "c3")]
    org = analyse(links=chain, since=0, until=3)
    assert org["gaps"] == [] and org["chain_breaks"] == [] and len(org["chain_starts"]) == 1
    assert spans(org["covered"]) == [(at(0), at(3))]


def test_a_link_from_an_unknown_cursor_is_a_break_counted_from_its_start():
    chain = [link("r1", 0, 1, "", "c1"), link("r2", 1, 2, "c1", "c2"),
             link("r3", 2, 5, "restored-from-elsewhere", "c3", started_at=4)]
    org = analyse(links=chain, since=0, until=5)
    [broken] = org["chain_breaks"]
    assert broken["run_id"] == "r3" and broken["counted_from"] == at(4)
    assert spans(org["gaps"]) == [(at(2), at(4))]


def test_a_link_with_an_older_state_fills_from_its_predecessor():
    # A state without caught_up_at (written before the coverage records existed) links by cursor alone.
    chain = [link("r1", 0, 1, "", "c1"), link("r2", None, 2, "c1", "c2")]
    org = analyse(links=chain, since=0, until=2)
    assert org["gaps"] == [] and spans(org["covered"]) == [(at(0), at(2))]


def test_backfills_fill_what_a_lost_state_left_open():
    chain = [link("r1", 0, 1, "", "c1"), link("r2", 3, 4, "", "c2")]  # second chain started --lookback back
    assert spans(analyse(links=chain, since=0, until=4)["gaps"]) == [(at(1), at(3))]
    org = analyse([backfill("fill", 1, 3)], chain, since=0, until=4)
    assert org["gaps"] == [] and len(org["chain_starts"]) == 2


def test_failed_runs_are_listed_per_org():
    failed = {"run_id": "f1", "mode": "backfill", "okta_org_url": ORG, "since": at(0), "until": at(1),
              "failed_at": at(1.5), "error": "OktaApiError: 401 E0000011"}
    org = analyse([backfill("a", 1, 2)], failed=[failed], since=0, until=2)
    assert org["failed_runs"] == [{k: failed[k] for k in ("run_id", "mode", "failed_at", "since", "until", "error")}]
    assert spans(org["gaps"]) == [(at(0), at(1))]


def test_orgs_are_kept_apart():
    records = {"manifests": [backfill("a", 0, 1), backfill("b", 1, 2, org="https://other.okta.com")],
               "cursors": [], "windows": [], "failed": []}
    found = analysis.analyse(records, None, T0, T0 + dt.timedelta(hours=2))
    assert [(o.org_url, [(analysis.text(a), analysis.text(b)) for a, b in o.gaps]) for o in found] == [
        (ORG, [(at(1), at(2))]), ("https://other.okta.com", [(at(0), at(1))])]


def test_the_html_draws_exactly_the_json():
    records = {"manifests": [backfill("a", 0, 1), backfill("b", 2, 3)],
               "cursors": [link("r1", 3, 4, "", "c1"), link("r2", 4, 5, "c1", "c2")],
               "windows": [{**link("t1", 5, 5.5, "c2", "c3", kind="okta-tail")}],
               "failed": [{"run_id": "f1", "mode": "backfill", "okta_org_url": ORG, "failed_at": at(1.5),
                           "error": "OktaApiError: <401>"}]}
    hourly = [{"hour": at(0), "events": 10}, {"hour": at(2), "events": 30}]
    org = analysis.analyse(records, None, T0, T0 + dt.timedelta(hours=6), hourly)
    result = {"lake": "/lake", "generated_at": at(7), "requested": {"since": at(0), "until": at(6)},
              "events_per_hour_source": "test", "orgs": [o.as_dict() for o in org], "gaps_in_requested_range": 2}
    page = html_report.render_html(result)
    assert "&lt;401&gt;" in page and "<401>" not in page  # escaped
    drawn = SvgShapes()
    drawn.feed(page)
    want = json.loads(json.dumps(result["orgs"][0]))
    assert [(r["data-since"], r["data-until"]) for r in drawn.shapes["covered"]] == spans(want["covered"])
    assert [(r["data-since"], r["data-until"]) for r in drawn.shapes["gap"]] == spans(want["gaps"])
    assert spans(want["gaps"]) == [(at(1), at(2)), (at(5.5), at(6))]
    lanes = [r for kind in analysis.KINDS for r in drawn.shapes.get(kind, [])]
    assert sorted((r["data-kind"], r["data-since"], r["data-until"], r["data-run"]) for r in lanes) == sorted(
        (s["kind"], s["since"], s["until"], s["run_id"]) for s in want["spans"])
    assert [r["data-run"] for r in drawn.shapes["failed"]] == ["f1"]
    assert [(r["data-hour"], int(r["data-events"])) for r in drawn.shapes["events"]] == [(at(0), 10), (at(2), 30)]
    # Drawn to scale: x positions are in time order, and a 1-hour gap is as wide as a 1-hour backfill.
    widths = {r["data-since"]: float(r["width"]) for r in drawn.shapes["gap"] + drawn.shapes["backfill"]}
    assert widths[at(1)] == pytest.approx(widths[at(0)])


def exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exited:  # argparse's own refusals
        return exited.code


@pytest.mark.parametrize("args", [
    ["--since=yesterday"], ["--since=2026-11-20T00:00:00Z", "--until=2026-11-19T00:00:00Z"],
    ["--until=2026-11-19T00:00:00Z"], ["--format=pdf"], ["--okta_org_url=ftp://acme"], ["--no_such_flag=1"],
])
def test_bad_options_exit_2(args, tmp_path, capsys):
    assert exit_code([f"--output={tmp_path}", *args]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_lake_is_required(capsys):
    assert exit_code([]) == 2


def test_an_empty_lake_with_a_requested_range_is_a_gap(tmp_path, capsys):
    assert cli.main([f"--output={tmp_path}", "--since=2h"]) == 1
    assert "no Okta runs recorded" in capsys.readouterr().out
    assert cli.main([f"--output={tmp_path}"]) == 0


def test_a_duration_means_that_long_ago():
    now = T0
    assert cli.parse_when("26h", "--since", now) == now - dt.timedelta(hours=26)
    assert cli.parse_when("2026-11-19T00:00:00Z", "--since", now) == dt.datetime(2026, 11, 19,
                                                                                     tzinfo=dt.timezone.utc)


def test_records_round_trip_and_a_bad_one_is_reported_not_fatal(tmp_path, capsys):
    from sinks.lake import records as run_records
    from sources.okta import state as okta_state

    lake, state_file = str(tmp_path / "lake"), str(tmp_path / "cursor.json")
    first = okta_state.CursorState(ORG, "", "https://acme.okta.com/api/v1/logs?after=1", run_id="r1",
                                   caught_up_at=at(1), started={"started_from": "lookback", "span_since": at(0)})
    okta_state.store(state_file, first)
    # The state keeps caught_up_at (the next chain link starts there), not where the chain started.
    stored = json.loads((tmp_path / "cursor.json").read_text())
    assert stored["caught_up_at"] == at(1) and "started" not in stored
    assert okta_state.load(state_file).caught_up_at == at(1)
    run_records.write_cursor_record(lake, "r1", run_records.cursor_link(first, "incremental", started_at=at(0)))
    started = {"started_from": "cursor", "cursor_from": first.next_url, "cursor_from_run": "r1", "span_since": at(1)}
    second = okta_state.CursorState(ORG, "", "https://acme.okta.com/api/v1/logs?after=2", run_id="r2",
                                    caught_up_at=at(2), started=started)
    run_records.write_window_record(lake, "r2-w1-000001", run_records.cursor_link(second, "okta-tail"))
    (tmp_path / "lake" / "_runs" / "broken.json").write_text("{not json")
    assert cli.main([f"--output={lake}", f"--since={at(0)}", f"--until={at(2)}"]) == 0
    out = capsys.readouterr().out
    assert f"covered  [{at(0)}, {at(2)})  2h  (2 runs)" in out
    assert "warning: unreadable record, not counted:" in out and "broken.json" in out


def test_no_such_local_lake_exits_2(tmp_path, capsys):
    assert cli.main([f"--output={tmp_path / 'nowhere'}"]) == 2
    assert "no such lake" in capsys.readouterr().err


def test_a_tails_window_records_are_one_file_per_hour_and_prove_what_one_file_per_window_proved(tmp_path,
                                                                                                  monkeypatch):
    """Three hours of 6-minute windows of one tail: 30 chain links in 3 files (one per job and hour), read back
    exactly, and the same coverage as the old layout (a file per window) gives; a restarted process writes
    files of its own beside, so neither loses the other's records."""
    from sinks.lake import records as run_records

    chain, cursor = [], ""
    for n in range(30):
        hours = 0.1 * n
        window = (T0 + dt.timedelta(hours=hours)).strftime("w%Y%m%dT%H%M%SZ")
        chain.append({**link("tail", hours, hours + 0.1, cursor, f"c{n}", kind="okta-tail",
                             started_at=0), "window": window, "rows": n})
        cursor = f"c{n}"
    new, old = str(tmp_path / "new"), tmp_path / "old"
    for n, record in enumerate(chain[:25]):
        run_records.write_window_record(new, f"tail-{record['window']}-{n + 1:06d}", record)
    monkeypatch.setitem(run_records._PROCESS, "pid", None)  # the tail restarts: a new process, the same job
    for n, record in enumerate(chain[25:], start=25):
        run_records.write_window_record(new, f"tail-{record['window']}-{n - 24:06d}", record)
    for n, record in enumerate(chain):  # how lakes written before keep them
        (old / "_runs" / "windows").mkdir(parents=True, exist_ok=True)
        (old / "_runs" / "windows" / f"tail-{record['window']}-{n + 1:06d}.json").write_text(json.dumps(record))

    files = sorted(p.name for p in (tmp_path / "new" / "_runs" / "windows").iterdir())
    assert len(files) == 4 and all(f.endswith(".jsonl") for f in files)  # hours 0, 1, 2 and the restart's
    assert sorted({f.split("-")[1] for f in files}) == ["20261120T00", "20261120T01", "20261120T02"]
    read = run_records.read_all(new)
    assert read["unreadable"] == [] and sorted(r["rows"] for r in read["windows"]) == list(range(30))
    assert [{k: v for k, v in r.items() if k != "record"} for r in sorted(read["windows"], key=lambda r: r["rows"])
            ] == chain

    def covered(lake):
        [org] = analysis.analyse(run_records.read_all(lake), None, T0, T0 + dt.timedelta(hours=3))
        return org.as_dict()

    assert covered(new) == covered(str(old))
    assert spans(covered(new)["covered"]) == [(at(0), at(3))] and covered(new)["gaps"] == []
    (tmp_path / "new" / "_runs" / "windows" / files[0]).write_text(
        (tmp_path / "new" / "_runs" / "windows" / files[0]).read_text() + "{cut short\n")
    read = run_records.read_all(new)
    assert len(read["windows"]) == 30 and len(read["unreadable"]) == 1 and "line" in read["unreadable"][0]
