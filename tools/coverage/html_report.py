"""The coverage report as one self-contained HTML page: per org, an SVG timeline drawn to scale (a lane per
run kind, the covered spans, the gaps, the audited hours with their result, the failed runs, the lake's events
per hour) and a table of what is wrong.

Every shape carries its data (``data-since``, ``data-until``, ``data-run``...), so a test can read back
exactly what was drawn. No script, no external resource.
"""

from __future__ import annotations

import datetime as _dt
import html

from tools.coverage.analysis import moment
from tools.coverage.text_report import duration

WIDTH, LEFT, RIGHT = 1100, 120, 20
LANES = (("backfill", "backfills"), ("incremental", "incremental"), ("okta-tail", "Okta tail"),
         ("covered", "covered"), ("gap", "gaps"), ("audited", "audited"), ("failed", "failed runs"),
         ("events", "lake events/h"))
LANE = {kind: number for number, (kind, _) in enumerate(LANES)}
LANE_HEIGHT, EVENTS_HEIGHT = 20, 50
COLOURS = {"backfill": "#4c78a8", "incremental": "#72b7b2", "okta-tail": "#54a24b", "covered": "#2f7d32",
           "gap": "#d62728", "failed": "#e45756", "events": "#9d755d"}
#: The audited lane: an hour's colour is the newest audit's result (missing hours in red).
AUDIT_COLOURS = {"clean": "#59a14f", "repaired": "#8cd17d", "missing": "#d62728", "unexpected": "#f28e2b",
                 "failed": "#bab0ac"}

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 4px; }
.meta { color: #555; margin: 0 0 8px; }
.verdict { display: inline-block; padding: 2px 8px; border-radius: 4px; color: #fff; font-weight: 600; }
.ok { background: #2f7d32; } .bad { background: #d62728; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
table { border-collapse: collapse; margin: 4px 0 0; font-size: 13px; }
td, th { padding: 2px 12px 2px 0; text-align: left; vertical-align: top; }
td:nth-child(-n+2) { white-space: nowrap; } td:nth-child(2) { font-family: ui-monospace, monospace; }
"""


def _axis(result: dict, org: dict) -> tuple[_dt.datetime, _dt.datetime] | None:
    points = [moment(s[k]) for s in org["spans"] for k in ("since", "until")]
    points += [moment(g[k]) for g in org["gaps"] for k in ("since", "until")]
    points += [moment(a["hour"]) + offset for a in org.get("audited", [])
               for offset in (_dt.timedelta(0), _dt.timedelta(hours=1))]
    if result["requested"]:
        points += [moment(result["requested"]["since"]), moment(result["requested"]["until"])]
    points = [p for p in points if p is not None]
    if not points or min(points) == max(points):
        return None
    return min(points), max(points)


TICK_STEPS = [_dt.timedelta(minutes=m) for m in (1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)]


def ticks(start: _dt.datetime, end: _dt.datetime, most: int = 12) -> list[_dt.datetime]:
    """Round UTC instants between start and end, at most ``most`` of them (the axis labels)."""
    step = next((s for s in TICK_STEPS if (end - start) / s <= most), TICK_STEPS[-1])
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    tick = day + step * -(-((start - day) // _dt.timedelta(seconds=1)) // int(step.total_seconds()))
    found = []
    while tick <= end:
        found.append(tick)
        tick += step
    return found


def _svg(result: dict, org: dict) -> str:
    axis = _axis(result, org)
    if axis is None:
        return "<p>nothing to draw: no covered span and no requested range</p>"
    start, end = axis
    scale = (WIDTH - LEFT - RIGHT) / (end - start).total_seconds()

    def x(value: _dt.datetime) -> float:
        return LEFT + (min(max(value, start), end) - start).total_seconds() * scale

    def rect(lane: int, since: str, until: str, kind: str, run: str = "", title: str = "") -> str:
        a, b = x(moment(since)), x(moment(until))
        y = 20 + lane * LANE_HEIGHT
        return (f'<rect class="{kind}" data-kind="{kind}" data-since="{since}" data-until="{until}" '
                f'data-run="{html.escape(run)}" x="{a:.2f}" y="{y}" width="{max(b - a, 1):.2f}" '
                f'height="{LANE_HEIGHT - 6}" fill="{COLOURS[kind]}"><title>{html.escape(title)}</title></rect>')

    parts = []
    for lane, (_, label) in enumerate(LANES):
        parts.append(f'<text x="4" y="{20 + lane * LANE_HEIGHT + 12}">{label}</text>')
    for span in org["spans"]:
        lane = [k for k, _ in LANES].index(span["kind"])
        parts.append(rect(lane, span["since"], span["until"], span["kind"], span["run_id"],
                          f"{span['kind']} {span['run_id']}: [{span['since']}, {span['until']})"))
    for span in org["covered"]:
        parts.append(rect(LANE["covered"], span["since"], span["until"], "covered", "",
                          f"covered [{span['since']}, {span['until']})"))
    for gap in org["gaps"]:
        parts.append(rect(LANE["gap"], gap["since"], gap["until"], "gap", "",
                          f"gap [{gap['since']}, {gap['until']}) {duration(gap['seconds'])}"))
    for hour in org.get("audited", []):
        parts.append(_audited(hour, x))
    for failed in org["failed_runs"]:
        run, error = html.escape(str(failed.get("run_id"))), html.escape(str(failed.get("error", "")))
        y = 20 + LANE["failed"] * LANE_HEIGHT
        if moment(failed.get("since")) and moment(failed.get("until")):  # a backfill: the range it did not write
            a, b = x(moment(failed["since"])), x(moment(failed["until"]))
            parts.append(f'<rect class="failed" data-run="{run}" data-since="{failed["since"]}" '
                         f'data-until="{failed["until"]}" x="{a:.2f}" y="{y + 1}" width="{max(b - a, 1):.2f}" '
                         f'height="{LANE_HEIGHT - 8}" fill="#fbe3e3" stroke="{COLOURS["failed"]}" '
                         f'stroke-dasharray="3 2"><title>{run}: {error}</title></rect>')
        elif (when := moment(failed.get("failed_at"))) is not None:
            parts.append(f'<path class="failed" data-run="{run}" data-at="{failed["failed_at"]}" '
                         f'd="M{x(when):.2f} {y} l6 {LANE_HEIGHT - 8} h-12 z" fill="{COLOURS["failed"]}">'
                         f'<title>{run}: {error}</title></path>')
    base = 20 + LANE["events"] * LANE_HEIGHT + EVENTS_HEIGHT
    hours = [h for h in org["events_per_hour"] if start <= moment(h["hour"]) < end]
    peak = max((h["events"] for h in hours), default=0)
    for hour in hours:
        a = x(moment(hour["hour"]))
        b = x(moment(hour["hour"]) + _dt.timedelta(hours=1))
        height = EVENTS_HEIGHT * hour["events"] / peak if peak else 0
        parts.append(f'<rect class="events" data-hour="{hour["hour"]}" data-events="{hour["events"]}" '
                     f'x="{a:.2f}" y="{base - height:.2f}" width="{max(b - a - 0.5, 0.5):.2f}" height="{height:.2f}" '
                     f'fill="{COLOURS["events"]}"><title>{hour["hour"]}: {hour["events"]} events</title></rect>')
    if peak:
        parts.append(f'<text x="{LEFT - 4}" y="{base - EVENTS_HEIGHT + 10}" text-anchor="end">{peak:,}</text>')
    # Axis: ticks at evenly spread instants, labelled in UTC.
    axis_y = base + 6
    parts.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="#888"/>')
    for number, tick in enumerate(ticks(start, end)):
        tx = x(tick)
        label = f"{tick:%Y-%m-%d %H:%M}" if number == 0 else f"{tick:%m-%d}" if tick.hour == tick.minute == 0 \
            else f"{tick:%H:%M}"
        parts.append(f'<line x1="{tx:.2f}" y1="{axis_y}" x2="{tx:.2f}" y2="{axis_y + 4}" stroke="#888"/>')
        parts.append(f'<text x="{tx:.2f}" y="{axis_y + 16}" text-anchor="middle">{label}</text>')
    if result["requested"]:
        for key in ("since", "until"):
            rx = x(moment(result["requested"][key]))
            parts.append(f'<line class="requested" x1="{rx:.2f}" y1="14" x2="{rx:.2f}" y2="{axis_y}" '
                         'stroke="#000" stroke-dasharray="4 3"/>')
    height = axis_y + 24
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" data-org="{html.escape(org["org_url"])}">' + "".join(parts) + "</svg>")


def _audited(hour: dict, x) -> str:
    """One audited hour in the audited lane, coloured by its result (``data-result``)."""
    start = moment(hour["hour"])
    a, b = x(start), x(start + _dt.timedelta(hours=1))
    y = 20 + LANE["audited"] * LANE_HEIGHT
    result = hour["result"]
    title = (f"{hour['hour']} +1h: {result}, {hour.get('missing', 0)} missing, {hour.get('unexpected', 0)} "
             f"unexpected (audit {hour.get('audit_id', '')}, {hour.get('audited_at', '')})")
    return (f'<rect class="audited" data-kind="audited" data-hour="{hour["hour"]}" data-result="{result}" '
            f'data-missing="{hour.get("missing", 0)}" data-audit="{html.escape(str(hour.get("audit_id", "")))}" '
            f'x="{a:.2f}" y="{y}" width="{max(b - a - 0.5, 0.5):.2f}" height="{LANE_HEIGHT - 6}" '
            f'fill="{AUDIT_COLOURS.get(result, "#bab0ac")}"><title>{html.escape(title)}</title></rect>')


def render_html(result: dict) -> str:
    verdict = ""
    if result["requested"]:
        bad = result["gaps_in_requested_range"]
        verdict = (f'<span class="verdict {"bad" if bad else "ok"}">'
                   f'{f"{bad} gap(s) in the requested range" if bad else "no gap in the requested range"}</span>')
        requested = f"requested [{result['requested']['since']}, {result['requested']['until']})"
    else:
        requested = "no range requested"
    body = [f"<h1>Okta System Log coverage</h1><p class=\"meta\">{html.escape(result['lake'])} · {requested} · "
            f"generated {result['generated_at']} (UTC)</p>{verdict}"]
    for org in result["orgs"]:
        body.append(f"<h2>{html.escape(org['org_url'])}</h2>")
        body.append(_svg(result, org))
        rows = [("gap", f"[{g['since']}, {g['until']})", duration(g["seconds"])) for g in org["gaps"]]
        rows += [("chain break", b["run_id"], b["reason"]) for b in org["chain_breaks"]]
        rows += [("missing events", f"[{a['hour']} +1h)", f"{a.get('missing', 0)} events Okta holds are not in the "
                  f"lake (audit {a.get('audit_id', '')}): okta-personal-lake audit --repair")
                 for a in org.get("audited", []) if a["result"] == "missing"]
        rows += [("failed run", f.get("run_id", ""), f"{f.get('failed_at', '')}: {f.get('error', '')}")
                 for f in org["failed_runs"]]
        if rows:
            body.append("<table><tr><th>what</th><th>which</th><th>detail</th></tr>" + "".join(
                f"<tr><td>{html.escape(a)}</td><td>{html.escape(str(b))}</td><td>{html.escape(str(c))}</td></tr>"
                for a, b, c in rows) + "</table>")
    if not result["orgs"]:
        body.append("<p>No Okta runs are recorded in this lake.</p>")
    body.append(f"<p class=\"meta\">events per hour: {html.escape(result['events_per_hour_source'])}</p>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Okta coverage</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
