"""The audit as text: per org, the hours with something to say (missing, dead-lettered, unexpected, repaired,
failed), the clean ones as ranges, the Okta requests and the repair runs; then the totals."""

from __future__ import annotations

from common.durations import parse_time, rfc3339
from tools.audit.hours import HOUR, blocks

SHOWN_UUIDS = 3  # per line; --format=json lists every one


def _uuids(uuids: list[str]) -> str:
    more = len(uuids) - SHOWN_UUIDS
    return ", ".join(uuids[:SHOWN_UUIDS]) + (f" and {more} more (--format=json lists them all)" if more > 0 else "")


def _ranges(hours: list[str]) -> list[str]:
    found = blocks(parse_time(h, "hour") for h in hours)
    return [f"[{rfc3339(a)}, {rfc3339(b)})  {int((b - a) / HOUR)}h" for a, b in found]


def _hour_lines(hour: dict) -> list[str]:
    at = f"[{hour['hour']} +1h)"
    if hour["result"] == "failed":
        return [f"  FAILED      {at}  not audited: {hour['error']}"]
    lines = []
    for name, counts in hour["types"].items():
        if counts["missing"]:
            lines.append(f"  MISSING     {at}  {name}: {counts['missing']} of {counts['okta']} not in the lake: "
                         f"{_uuids(counts['missing_uuids'])}")
        if counts["dead_lettered"]:
            reasons = sorted({f"{d.get('stage')}: {d.get('error')}" for d in counts["dead_letters"]})
            lines.append(f"  DEAD LETTER {at}  {name}: {counts['dead_lettered']} refused by the pipeline "
                         f"({'; '.join(reasons)[:300]})")
        if counts["unexpected"]:
            lines.append(f"  UNEXPECTED  {at}  {name}: {counts['unexpected']} in the lake, not returned by Okta "
                         f"(kept): {_uuids(counts['unexpected_uuids'])}")
        table = counts.get("iceberg")
        if table and table["missing"]:
            lines.append(f"  MISSING     {at}  {name}: {table['missing']} of {counts['okta']} not in the Iceberg "
                         f"table: {_uuids(table['missing_uuids'])}")
        if table and table["unexpected"]:
            lines.append(f"  UNEXPECTED  {at}  {name}: {table['unexpected']} in the Iceberg table, not returned by "
                         f"Okta (kept): {_uuids(table['unexpected_uuids'])}")
    if hour["repaired"]:
        lines.append(f"  REPAIRED    {at}  {hour['repaired']} events added by the repair; nothing missing now")
    if hour["unreadable"]:
        lines.append(f"  note        {at}  {hour['unreadable']} events Okta returned had no readable uuid or type "
                     "(not compared)")
    if hour["doubled_rows"]:
        lines.append(f"  DOUBLED     {at}  {hour['doubled_rows']} rows held more than once in the lake")
    return lines


def render_text(result: dict) -> str:
    lines = [f"audit {result['audit_id']} of {result['lake']}"
             + (f" and the Iceberg table {result['iceberg_table']}" if result["iceberg_table"] else "")
             + f", [{result['requested']['since']}, {result['requested']['until']}) in whole UTC hours, settled "
               f"{result['settle']}"]
    for org in result["orgs"]:
        totals, okta = org["totals"], org["okta"]
        per_day = f" ({okta['requests_per_day']:g} per audited day)" if okta["requests_per_day"] is not None else ""
        found = [f"{totals['clean']} clean"] + [f"{totals[k]} {what}" for k, what in (
            ("repaired_hours", "repaired"), ("unexpected_hours", "with unexpected events")) if totals[k]]
        lines.append(f"org {org['org_url']} ({org['event_types']}): {totals['hours_audited']} hours audited: "
                     f"{', '.join(found)}, {totals['missing_hours']} with missing events; "
                     f"{totals['okta_events']:,} events in Okta; {okta['requests']} Okta requests{per_day} in "
                     f"{okta['seconds']:.1f} s")
        for hour in org["hours"]:
            lines += _hour_lines(hour)
        for span in _ranges([h["hour"] for h in org["hours"] if h["result"] == "clean"]):
            lines.append(f"  clean       {span}")
        if org["skipped_clean"]:
            lines.append(f"  skipped     {len(org['skipped_clean'])} hours audited clean before (--skip_clean)")
        for span in _ranges(org["not_settled"]):
            lines.append(f"  not yet     {span}  (ended less than {result['settle']} ago)")
        for run in org["repairs"]:
            lines.append(f"  repair run  {run['run_id']} [{run['since']}, {run['until']}): exit {run['exit_code']}")
        if org["status"] == "failed":
            verdict = "retryable: audit again later" if org["retryable"] else "fatal"
            lines.append(f"  FAILED      Okta did not answer ({verdict}): {org['error']}")
    every = [org["totals"] for org in result["orgs"]]
    requests = sum(org["okta"]["requests"] for org in result["orgs"])
    failed = sum(org["status"] == "failed" for org in result["orgs"])
    lines.append(f"{len(every)} org(s): {sum(t['hours_audited'] for t in every)} hours audited, "
                 f"{sum(t['missing'] for t in every)} events missing, {sum(t['unexpected'] for t in every)} "
                 f"unexpected, {sum(t['repaired'] for t in every)} repaired"
                 + (f", {failed} org(s) failed" if failed else "") + f"; {requests} Okta requests")
    return "\n".join(lines)
