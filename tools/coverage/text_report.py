"""The coverage report as text: per org, the covered spans (and how their hours were audited) and the gaps in
time order, chain starts and breaks, failed runs, the audited hours with missing events, and the events counted."""

from __future__ import annotations

from tools.coverage.analysis import moment


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0s"


def audit_note(audit: dict | None) -> str:
    """What the audits said of a covered span's hours ("" when the org was never audited)."""
    if not audit:
        return ""
    if audit["verdict"] == "audited":
        return f"; covered and audited: {audit['hours']} of {audit['hours']} hours clean"
    clean = audit["clean"] + audit["repaired"]
    parts = [f"{audit[k]} {k.replace('_', ' ')}" for k in ("missing", "unexpected", "failed", "not_audited")
             if audit[k]]
    return f"; audited: {clean} of {audit['hours']} hours clean, " + ", ".join(parts)


def render_text(result: dict) -> str:
    lines = [f"coverage of {result['lake']}"
             + (f", requested [{result['requested']['since']}, {result['requested']['until']})"
                if result["requested"] else " (no range requested: gaps between covered spans)")]
    if not result["orgs"]:
        lines.append("  no Okta runs recorded in this lake")
    for org in result["orgs"]:
        lines.append(f"org {org['org_url']}")
        timeline = [(span["since"], "covered", span) for span in org["covered"]]
        timeline += [(gap["since"], "gap", gap) for gap in org["gaps"]]
        for _, what, span in sorted(timeline, key=lambda item: (item[0], item[1])):
            if what == "gap":
                lines.append(f"  GAP      [{span['since']}, {span['until']})  {duration(span['seconds'])}")
                continue
            runs = sorted({f"{s['kind']} {s['run_id']}" for s in org["spans"]
                           if s["since"] < span["until"] and s["until"] > span["since"]})
            seconds = (moment(span["until"]) - moment(span["since"])).total_seconds()
            lines.append(f"  covered  [{span['since']}, {span['until']})  {duration(seconds)}  "
                         f"({len(runs)} run{'s' if len(runs) != 1 else ''})" + audit_note(span.get("audit")))
        for start in org["chain_starts"]:
            lines.append(f"  chain start: {start['kind']} run {start['run_id']} started --lookback back, "
                         f"at {start['lookback_since']}")
        for broken in org["chain_breaks"]:
            lines.append(f"  CHAIN BREAK: {broken['kind']} run {broken['run_id']} {broken['reason']}; "
                         f"counted from {broken['counted_from']}")
        for hour in org.get("audited", []):
            if hour["result"] == "missing":
                lines.append(f"  AUDIT    [{hour['hour']} +1h)  {hour.get('missing', 0)} events Okta holds are missing "
                             f"(audit {hour['audit_id']}): okta-personal-lake audit --repair")
        for failed in org["failed_runs"]:
            lines.append(f"  FAILED   run {failed.get('run_id')} ({failed.get('mode', '?')}) at "
                         f"{failed.get('failed_at', '?')}: {failed.get('error', '')}")
        if org["events_per_hour"]:
            total = sum(h["events"] for h in org["events_per_hour"])
            busiest = max(org["events_per_hour"], key=lambda h: h["events"])
            lines.append(f"  events: {total:,} in {len(org['events_per_hour'])} hours (busiest {busiest['hour']}: "
                         f"{busiest['events']:,}); {result['events_per_hour_source']}")
    for problem in result.get("unreadable_records", []):
        lines.append(f"warning: unreadable record, not counted: {problem}")
    if result["requested"]:
        lines.append(f"{result['gaps_in_requested_range']} gap(s) inside the requested range"
                     + (" (no run of the org is recorded)" if not result["orgs"] else ""))
    return "\n".join(lines)
