"""``python -m tools.coverage --output=LAKE``: which hours of which Okta org the lake provably holds.

Reads the run records under ``LAKE/_runs`` (:mod:`sinks.lake.records`): the
manifests of committed backfills (their ``[since, until)``), the chain links
that incremental runs and the Okta tail leave when they store a cursor, and
the records of failed runs. Per org it prints the covered spans, the gaps
between them, the cursor-chain breaks and the failed runs, plus events per
hour (DuckDB over the lake's ``published`` and ``okta_org`` columns, local
lakes only; a lake whose rows carry no org shows all its rows under each org).

A polling link covers ``[span_since, span_until)``: from where the chain it
continues was caught up to where it is now. A link counts only when its
start is proven: it started from ``--lookback`` (a chain start), or from a
cursor that another recorded link stored. A link whose cursor no recorded
run stored (a lost or replaced state file) is a chain break: it is counted
only from its own start time, so what came before shows as a gap.

Exit codes: 0 no gap inside the requested ``[--since, --until)`` (or none
requested), 1 a gap inside it, 2 bad options or no such (local) lake.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import html
import json
import sys
from dataclasses import dataclass, field

from okta_client.urls import org_host

UTC = _dt.timezone.utc
KINDS = ("backfill", "incremental", "okta-tail")


@dataclass(frozen=True)
class Span:
    since: _dt.datetime
    until: _dt.datetime
    kind: str  # backfill, incremental, okta-tail
    run_id: str

    def as_dict(self) -> dict:
        return {"since": text(self.since), "until": text(self.until), "kind": self.kind, "run_id": self.run_id}


@dataclass
class OrgCoverage:
    org_url: str
    spans: list[Span] = field(default_factory=list)
    covered: list[tuple[_dt.datetime, _dt.datetime]] = field(default_factory=list)
    gaps: list[tuple[_dt.datetime, _dt.datetime]] = field(default_factory=list)
    chain_breaks: list[dict] = field(default_factory=list)
    chain_starts: list[dict] = field(default_factory=list)
    failed_runs: list[dict] = field(default_factory=list)
    events_per_hour: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "org_url": self.org_url,
            "covered": [{"since": text(a), "until": text(b)} for a, b in self.covered],
            "gaps": [{"since": text(a), "until": text(b), "seconds": (b - a).total_seconds()} for a, b in self.gaps],
            "spans": [s.as_dict() for s in self.spans],
            "chain_starts": self.chain_starts,
            "chain_breaks": self.chain_breaks,
            "failed_runs": self.failed_runs,
            "events_per_hour": self.events_per_hour,
        }


def text(moment: _dt.datetime) -> str:
    """UTC, millisecond precision, like Okta's ``published``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def moment(value) -> _dt.datetime | None:
    if not value:
        return None
    from transforms.envelope import InvalidEvent, published_datetime

    try:
        return published_datetime(str(value))
    except InvalidEvent:
        return None


def org_of(record: dict) -> str:
    """The org a record belongs to ("" for exported files, or when the record does not name one org)."""
    for key in ("okta_org_url", "org_url"):
        if isinstance(record.get(key), str) and record[key]:
            return record[key].rstrip("/")
    described = record.get("okta")  # older manifests: "https://acme.okta.com (SSWS token, rate share 1)"
    return described.split(" ", 1)[0].rstrip("/") if isinstance(described, str) and described else ""


# --- the arithmetic (pure) ------------------------------------------------------------------------------------


def union(spans) -> list[tuple[_dt.datetime, _dt.datetime]]:
    """Merge ``[since, until)`` spans; touching spans merge (half-open ranges that tile leave no hole)."""
    merged: list[list[_dt.datetime]] = []
    for since, until in sorted((s.since, s.until) if isinstance(s, Span) else s for s in spans):
        if until <= since:
            continue
        if merged and since <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], until)
        else:
            merged.append([since, until])
    return [(a, b) for a, b in merged]


def gaps(covered, since: _dt.datetime | None = None, until: _dt.datetime | None = None):
    """The holes of ``covered`` (merged, sorted): inside ``[since, until)`` when given, else between its spans."""
    if since is None or until is None:
        return [(covered[i][1], covered[i + 1][0]) for i in range(len(covered) - 1)]
    holes, cursor = [], since
    for a, b in covered:
        if b <= cursor:
            continue
        if a >= until:
            break
        if a > cursor:
            holes.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < until:
        holes.append((cursor, until))
    return holes


def chain_spans(links: list[dict]) -> tuple[list[Span], list[dict], list[dict]]:
    """The spans polling links prove, the chain starts and the chain breaks (links of one org)."""
    stored = {}  # cursor -> the first link that stored it
    for link in sorted(links, key=lambda r: r.get("stored_at", "")):
        stored.setdefault(link.get("cursor_to"), link)
    spans, starts, breaks = [], [], []
    for link in sorted(links, key=lambda r: (r.get("span_until", ""), r.get("stored_at", ""))):
        until = moment(link.get("span_until"))
        run = link.get("run_id", "")
        if until is None:
            continue
        if link.get("started_from") == "lookback":
            since = moment(link.get("span_since"))
            starts.append({"run_id": run, "kind": link.get("kind", ""), "lookback_since": link.get("span_since")})
        else:
            before = stored.get(link.get("cursor_from"))
            if before is not None and before is not link:
                since = moment(link.get("span_since")) or moment(before.get("span_until"))
            else:
                # Nobody this lake knows stored that cursor: only what came after this chain started is proven.
                since = moment(link.get("started_at")) or until
                breaks.append({"run_id": run, "kind": link.get("kind", ""),
                               "cursor_from_run": link.get("cursor_from_run", ""),
                               "counted_from": text(since),
                               "reason": "started from a cursor that no recorded run stored "
                                         "(a lost, replaced or foreign --state)"})
        if since is not None and since < until:
            spans.append(Span(since, until, link.get("kind", "incremental"), run))
    return spans, starts, breaks


def failed_run(record: dict) -> dict:
    """What the report shows of a failed-run record (times as Okta writes them)."""
    shown = {k: record.get(k) for k in ("run_id", "mode", "failed_at", "started_at", "since", "until", "state",
                                        "error") if record.get(k)}
    for key in ("failed_at", "started_at"):
        if key in shown and moment(shown[key]) is not None:
            shown[key] = text(moment(shown[key]))
    return shown


def backfill_spans(manifests: list[dict]) -> list[Span]:
    spans = []
    for manifest in manifests:
        since, until = moment(manifest.get("since")), moment(manifest.get("until"))
        if since is not None and until is not None and since < until:
            spans.append(Span(since, until, "backfill", manifest.get("run_id", "")))
    return spans


def analyse(records: dict, orgs: list[str] | None = None, since: _dt.datetime | None = None,
            until: _dt.datetime | None = None, events_per_hour: dict | list | None = None) -> list[OrgCoverage]:
    """Per org: spans, their union, the gaps (inside ``[since, until)`` when given), breaks and failures."""
    by_org: dict[str, dict[str, list]] = {}

    def bucket(record, kind):
        org = org_of(record)
        if org:
            by_org.setdefault(org, {"manifests": [], "links": [], "failed": []})[kind].append(record)

    for manifest in records.get("manifests", []):
        bucket(manifest, "manifests")
    for link in records.get("cursors", []) + records.get("windows", []):
        bucket(link, "links")
    for failed in records.get("failed", []):
        bucket(failed, "failed")
    wanted = [o.rstrip("/") for o in orgs] if orgs else sorted(by_org)
    result = []
    for org in wanted:
        found = by_org.get(org, {"manifests": [], "links": [], "failed": []})
        coverage = OrgCoverage(org)
        polled, coverage.chain_starts, coverage.chain_breaks = chain_spans(found["links"])
        coverage.spans = sorted(backfill_spans(found["manifests"]) + polled,
                                key=lambda s: (s.since, s.until, s.kind, s.run_id))
        coverage.covered = union(coverage.spans)
        coverage.gaps = gaps(coverage.covered, since, until)
        coverage.failed_runs = sorted((failed_run(f) for f in found["failed"]), key=lambda f: f.get("failed_at", ""))
        coverage.events_per_hour = events_of(org, events_per_hour)
        result.append(coverage)
    return result


# --- reading the lake -----------------------------------------------------------------------------------------


def read_events_per_hour(lake: str) -> tuple[dict, str]:
    """Distinct events per UTC hour of ``published`` for each ``okta_org`` (DuckDB, local lakes); and the source.

    Keys are org hosts as the ``okta_org`` column holds them; ``None`` collects rows with no org (files
    written before the column existed, or file/Pub/Sub input without ``--okta_org``).
    """
    import glob
    import os

    from storage import fs
    from tools.report import DATA_FILES

    if not fs.is_local(lake):
        return {}, "not counted: events per hour are read with DuckDB from local lakes only"
    files = os.path.join(fs.local_path(lake), DATA_FILES)
    if not glob.glob(files):
        return {}, "no Parquet files in the lake"
    try:
        import duckdb
    except ImportError:
        return {}, "not counted: DuckDB is not installed (the 'local' extra)"
    connection = duckdb.connect()
    source = "read_parquet(?, hive_partitioning = true, union_by_name = true)"
    columns = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}", [files]).fetchall()}
    org = "okta_org" if "okta_org" in columns else "NULL::VARCHAR"  # a lake older than the column
    rows = connection.execute(
        f"SELECT {org} AS org, date_trunc('hour', published) AS hour, count(DISTINCT uuid) AS events "
        f"FROM {source} GROUP BY 1, 2 ORDER BY 1, 2", [files]).fetchall()
    by_org: dict = {}
    for host, hour, n in rows:
        by_org.setdefault(host, []).append(
            {"hour": text(hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour), "events": n})
    return by_org, "DuckDB: count(DISTINCT uuid) per hour of published, per okta_org"


def events_of(org_url: str, events_per_hour) -> list[dict]:
    """The org's hourly counts: its own rows; a lake whose rows carry no org at all counts every row."""
    if isinstance(events_per_hour, list):  # one series for every org
        return list(events_per_hour)
    by_org = events_per_hour or {}
    if set(by_org) <= {None}:
        return list(by_org.get(None, []))
    return list(by_org.get(org_host(org_url), []))


def report(lake: str, orgs: list[str] | None, since, until, count_events: bool = True) -> dict:
    from sinks.lake import records as run_records

    records = run_records.read_all(lake)
    hourly, source = read_events_per_hour(lake) if count_events else ({}, "not counted")
    coverage = analyse(records, orgs, since, until, hourly)
    requested = since is not None and until is not None
    in_range = sum(len(c.gaps) for c in coverage) if requested else 0
    return {
        "lake": lake,
        "generated_at": text(_dt.datetime.now(UTC)),
        "requested": {"since": text(since), "until": text(until)} if requested else None,
        "events_per_hour_source": source,
        "orgs": [c.as_dict() for c in coverage],
        "gaps_in_requested_range": in_range,
        "runs_without_org": len([m for m in records["manifests"] if not org_of(m)]),
        "unreadable_records": records.get("unreadable", []),
        "exit_code": 1 if in_range or (requested and not coverage) else 0,
    }


# --- rendering ------------------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs}s" if secs and not days else ""]
    return " ".join(p for p in parts if p) or "0s"


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
                         f"({len(runs)} run{'s' if len(runs) != 1 else ''})")
        for start in org["chain_starts"]:
            lines.append(f"  chain start: {start['kind']} run {start['run_id']} started --lookback back, "
                         f"at {start['lookback_since']}")
        for broken in org["chain_breaks"]:
            lines.append(f"  CHAIN BREAK: {broken['kind']} run {broken['run_id']} {broken['reason']}; "
                         f"counted from {broken['counted_from']}")
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


WIDTH, LEFT, RIGHT = 1100, 120, 20
LANES = (("backfill", "backfills"), ("incremental", "incremental"), ("okta-tail", "Okta tail"),
         ("covered", "covered"), ("gap", "gaps"), ("failed", "failed runs"), ("events", "lake events/h"))
LANE_HEIGHT, EVENTS_HEIGHT = 20, 50
COLOURS = {"backfill": "#4c78a8", "incremental": "#72b7b2", "okta-tail": "#54a24b", "covered": "#2f7d32",
           "gap": "#d62728", "failed": "#e45756", "events": "#9d755d"}

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
        parts.append(rect(3, span["since"], span["until"], "covered", "",
                          f"covered [{span['since']}, {span['until']})"))
    for gap in org["gaps"]:
        parts.append(rect(4, gap["since"], gap["until"], "gap", "",
                          f"gap [{gap['since']}, {gap['until']}) {duration(gap['seconds'])}"))
    for failed in org["failed_runs"]:
        run, error = html.escape(str(failed.get("run_id"))), html.escape(str(failed.get("error", "")))
        y = 20 + 5 * LANE_HEIGHT
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
    base = 20 + 6 * LANE_HEIGHT + EVENTS_HEIGHT
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


# --- the command ----------------------------------------------------------------------------------------------


def parse_when(value: str, name: str, now: _dt.datetime) -> _dt.datetime:
    """An RFC 3339 time, or a duration back from now (``26h``: 26 hours ago)."""
    from common.durations import parse_duration, parse_time

    if value and value[-1:].lower() in "smhd" and "T" not in value:
        return now - parse_duration(value, name)
    return parse_time(value, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.coverage",
        description="Which [since, until) ranges of which Okta org the lake's committed runs cover, the gaps "
                    "between them and the runs that failed. Exit 0: no gap in the requested range; 1: a gap; "
                    "2: bad options.")
    parser.add_argument("--output", required=True, help="the lake (local folder, gs:// or s3://)")
    parser.add_argument("--okta_org_url", action="append", default=[],
                        help="report this org only (repeatable); default: every org recorded in the lake")
    parser.add_argument("--since", help="start of the range that must be covered: RFC 3339, or a duration "
                                        "back from now like 26h")
    parser.add_argument("--until", help="end of that range (exclusive); default now")
    parser.add_argument("--format", choices=("text", "json", "html"), default="text")
    args, beam_args = parser.parse_known_args(argv)  # Beam's filesystem options (S3 endpoint, ...) pass through
    from pipeline.cli import unknown_flags

    if problems := unknown_flags(beam_args):
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    now = _dt.datetime.now(UTC)
    try:
        since = parse_when(args.since, "--since", now) if args.since else None
        until = parse_when(args.until, "--until", now) if args.until else (now if since else None)
        orgs = [normalised(o) for o in args.okta_org_url]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if until is not None and since is None:
        print("error: --until needs --since", file=sys.stderr)
        return 2
    if since is not None and since >= until:
        print("error: --until must be after --since", file=sys.stderr)
        return 2
    from storage import fs

    fs.configure(beam_args)

    lake = args.output.rstrip("/")
    if fs.is_local(lake) and not fs.exists(lake):
        print(f"error: --output {lake}: no such lake", file=sys.stderr)
        return 2
    result = report(lake, orgs or None, since, until)
    render = {"json": lambda r: json.dumps(r, indent=2), "html": render_html, "text": render_text}[args.format]
    print(render(result))
    return result["exit_code"]


def normalised(url: str) -> str:
    from okta_client.errors import UnsafeUrl
    from okta_client.urls import normalise_org_url

    try:
        return normalise_org_url(url)
    except UnsafeUrl as exc:
        raise ValueError(f"--okta_org_url: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
