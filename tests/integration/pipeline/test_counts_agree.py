"""One set of numbers in a batch run: its summary, its manifest (in total and per org) and its lake agree.

Two orgs are backfilled in one run from two local System Log servers. Their logs hold events that become dead
letters (a documented field of the wrong type) and the same events twice (Okta delivers at least once); one org
answers 503 now and then (retried), and a third org refuses the token (its events are withheld). The run is then
repeated over the same span, so every event is already in the lake. Each time the summary's counts, per org and
in total, must be the manifest's, and the lake must hold what both say was written.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import duckdb

from tests.support.helpers import run_pipeline
from tests.support.okta import TOKEN, iso, make_events, personal, recent_start

LINE = re.compile(r"^\s+(\S+): ([\d,]+) = ([\d,]+) \+ ([\d,]+) \+ ([\d,]+) \+ ([\d,]+) \+ ([\d,]+) -> OK")
TERMS = ("events_read", "events_written", "filtered_out", "duplicates", "dead_letters", "withheld")


def summary_counts(stdout: str) -> tuple[dict, dict]:
    """(total, {org: counts}) from the summary's check line and per-org lines."""
    [check] = [line for line in stdout.splitlines() if line.strip().startswith("check: read")]
    assert check.rstrip().endswith("-> OK"), check
    total = dict(zip(TERMS, (int(v.replace(",", "")) for v in re.findall(r"([\d,]+)", check.split("check:")[1]))))
    by_org = {}
    for line in stdout.splitlines():
        found = LINE.match(line)
        if found:
            by_org[found.group(1)] = dict(zip(TERMS, (int(v.replace(",", "")) for v in found.groups()[1:])))
    return total, by_org


def manifest_counts(manifest: dict) -> tuple[dict, dict]:
    total = {name: manifest["counts"][name] for name in TERMS}
    by_org = {}
    for org, entry in manifest.get("orgs", {}).items():
        by_org[org] = {"events_read": entry["events_read"], "events_written": entry["events_written"],
                       "filtered_out": entry["filtered_out"], "duplicates": entry["duplicates"],
                       "dead_letters": entry["dead_letters"],
                       "withheld": entry["withheld_events"] + entry["withheld_dead_letters"]}
    return total, by_org


def lake_events_by_org(lake) -> dict:
    rows = duckdb.sql(f"SELECT okta_org, count(DISTINCT uuid) FROM read_parquet('{lake}/event_date=*/event_type=*/"
                      "*.parquet', hive_partitioning=true) GROUP BY okta_org").fetchall()  # the README's query
    return dict(rows)


def test_summary_manifest_and_lake_agree_per_org_through_dead_letters_repeats_faults_and_a_failed_org(
        okta_server, tmp_path, monkeypatch):
    start = recent_start(3)
    span = dt.timedelta(minutes=40)
    events = {name: make_events(80, start, dt.timedelta(seconds=30), salt=i + 1) for i, name in enumerate("abc")}
    broken = [{**e, "actor": "not an object"} for e in personal(make_events(8, start, dt.timedelta(minutes=4),
                                                                             salt=9))]
    repeats = personal(events["a"])[:6]  # served twice: a duplicate in the run
    servers = {"a": okta_server(events["a"] + broken + repeats, fault_5xx=0.2, fault_seed=3),
               "b": okta_server(events["b"]),
               "c": okta_server(events["c"])}
    servers["c"].revoke_token()  # org c: 401, its source fails
    for name in "abc":
        monkeypatch.setenv(f"TOKEN_{name.upper()}", TOKEN)
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps([{"url": s.url, "token_env": f"TOKEN_{n.upper()}"} for n, s in servers.items()]))
    lake = tmp_path / "lake"
    for run_id in ("first", "again"):  # the second run finds every event in the lake already
        run = run_pipeline("--source=okta", f"--orgs={orgs}", f"--since={iso(start)}", f"--until={iso(start + span)}",
                           "--slice=10m", "--okta_page_limit=7", f"--output={lake}", f"--run_id={run_id}")
        assert run.code == 1, run.stderr  # org c failed (fatal: its token is refused)
        manifest = json.loads((lake / "_runs" / f"{run_id}.json").read_text())
        summary_total, summary_orgs = summary_counts(run.stdout)
        manifest_total, manifest_orgs = manifest_counts(manifest)
        assert summary_total == manifest_total, run_id
        assert summary_orgs == manifest_orgs, run_id
        assert set(manifest_orgs) == {s.url.split("://")[1] for s in servers.values()}
        assert manifest["orgs"][servers["c"].url.split("://")[1]]["status"] == "failed"

    host = {name: server.url.split("://")[1] for name, server in servers.items()}
    in_span = {name: [e for e in evs if e["published"] < iso(start + span)] for name, evs in events.items()}
    lake_orgs = lake_events_by_org(lake)
    assert lake_orgs == {host["a"]: len(personal(in_span["a"])), host["b"]: len(personal(in_span["b"]))}
    first = json.loads((lake / "_runs" / "first.json").read_text())
    assert manifest_counts(first)[1][host["a"]]["dead_letters"] == len(broken)
    assert manifest_counts(first)[1][host["a"]]["duplicates"] == len([e for e in repeats
                                                                      if e["published"] < iso(start + span)])
    assert first["counts"]["events_written"] == sum(lake_orgs.values())
    again = json.loads((lake / "_runs" / "again.json").read_text())
    assert again["counts"]["events_written"] == 0
    assert again["counts"]["duplicates_in_lake"] == sum(lake_orgs.values())
