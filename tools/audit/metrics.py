"""The audit's Prometheus series, written as a text file (``--metrics_file``) for node_exporter's textfile collector.

An audit is a command that ends, so nothing is served: its series are written whole to one file (a temporary
name, then renamed into place: a scrape never reads half of it), which node_exporter's
``--collector.textfile.directory`` exports, or any tool that reads the Prometheus text format. Every series is
a gauge with an ``org`` label (the org's host) and holds what the last audit found; alert rules are in
``monitoring/alerts.yml`` (docs/operations/audit.md).
"""

from __future__ import annotations

import math

from common.durations import parse_time, rfc3339
from tools.audit.hours import HOUR, hours_between, latest_results

PREFIX = "okta_personal_audit_"
#: name -> help, every one a gauge labelled ``org`` (``hours`` also ``result``).
SERIES = {
    "missing_events": "events Okta holds that the lake (or the Iceberg table) does not, after the last audit and "
                      "its repair",
    "unexpected_events": "events the lake (or table) holds for the org and hour that Okta did not return",
    "repaired_events": "events the last audit found missing and its repair added",
    "dead_lettered_events": "events Okta holds that the lake does not because the pipeline refused them "
                            "(dead letters)",
    "hours": "hours the last audit looked at, by result (clean, missing, unexpected, repaired, failed, skipped)",
    "okta_requests": "requests the last audit sent to the org's /api/v1/logs",
    "duration_seconds": "seconds the last audit spent reading the org's hours from Okta",
    "success": "1 when Okta answered for every hour of the last audit, else 0",
    "last_run_timestamp_seconds": "when the last audit of the org ran (epoch seconds)",
    "audited_until_seconds": "end of the newest hour of the org any audit has audited (epoch seconds)",
    "oldest_unaudited_hour_seconds": "start of the oldest settled hour of the last audit's range that no audit "
                                     "has audited (epoch seconds; NaN when none)",
}
RESULTS = ("clean", "missing", "unexpected", "repaired", "failed", "skipped")


def exported_names() -> set[str]:
    """Every sample name the file can hold (what the alert rules and the dashboard may use)."""
    return {PREFIX + name for name in SERIES}


def _epoch(text: str) -> float:
    return parse_time(text, "time").timestamp()


def org_readings(org: dict, previous: list[dict]) -> dict:
    """name -> value (``hours``: result -> value) for one org of an audit's result."""
    totals = org["totals"]
    hours = {result: sum(h["result"] == result for h in org["hours"]) for result in RESULTS}
    hours["skipped"] = len(org["skipped_clean"])
    # An hour counts as audited once any audit of this selection got Okta's answer for it (a later failure to
    # ask again does not undo that).
    answered = [{**r, "hours": [h for h in r.get("hours", []) if h.get("result") != "failed"]}
                for r in previous + [org]]
    audited = list(latest_results(answered, org["org_url"], org["event_types"], org["iceberg_table"]))
    requested = org["requested"]
    waiting = set(org["not_settled"])
    ready = [h for h in hours_between(parse_time(requested["since"], "since"), parse_time(requested["until"], "until"))
             if rfc3339(h) not in waiting]
    unaudited = [h for h in ready if h not in set(audited)]
    return {
        "missing_events": totals["missing"], "unexpected_events": totals["unexpected"],
        "repaired_events": totals["repaired"], "dead_lettered_events": totals["dead_lettered"], "hours": hours,
        "okta_requests": org["okta"]["requests"], "duration_seconds": org["okta"]["seconds"],
        "success": 0 if org["status"] == "failed" else 1,
        "last_run_timestamp_seconds": _epoch(org["audited_at"]),
        "audited_until_seconds": (max(audited) + HOUR).timestamp() if audited else math.nan,
        "oldest_unaudited_hour_seconds": min(unaudited).timestamp() if unaudited else math.nan,
    }


def render(result: dict, previous: list[dict]) -> bytes:
    """The audit's series in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    gauges = {name: Gauge(PREFIX + name, meaning, ["org", "result"] if name == "hours" else ["org"],
                          registry=registry) for name, meaning in SERIES.items()}
    for org in result["orgs"]:
        for name, value in org_readings(org, previous).items():
            if name == "hours":
                for outcome, count in value.items():
                    gauges[name].labels(org["org"], outcome).set(count)
            else:
                gauges[name].labels(org["org"]).set(value)
    return generate_latest(registry)


def write(path: str, result: dict, previous: list[dict]) -> None:
    """Write the file whole (local: a temporary name renamed into place; gs:// and s3://: one upload)."""
    from storage import fs

    fs.write_bytes(path, render(result, previous))
