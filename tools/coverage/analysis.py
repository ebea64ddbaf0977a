"""The coverage arithmetic: spans the run records prove, their union, the gaps, per org.

A polling link covers ``[span_since, span_until)``: from where the chain it
continues was caught up to where it is now. A link counts only when its
start is proven: it started from ``--lookback`` (a chain start), or from a
cursor that another recorded link stored. A link whose cursor no recorded
run stored (a lost or replaced state file) is a chain break: it is counted
only from its own start time, so what came before shows as a gap.

A many-org backfill (``--orgs``) covers its range for each org whose source finished (the manifest's
``orgs``); a failed org's rows were withheld. Audits (``okta-personal-lake audit``) leave per-hour results:
each hour shows the newest one, and a covered span says how many of the hours it touches were audited clean.

The records come from :mod:`sinks.lake.records`; events per hour from the lake's rows (DuckDB).
"""

from __future__ import annotations

import datetime as _dt
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
    audited: list[dict] = field(default_factory=list)  # per hour, the newest audit's result (audited orgs only)

    def as_dict(self) -> dict:
        covered = [{"since": text(a), "until": text(b)} for a, b in self.covered]
        if self.audited:
            for span in covered:
                span["audit"] = audit_of(span, self.audited)
        return {
            "org_url": self.org_url,
            "covered": covered,
            "gaps": [{"since": text(a), "until": text(b), "seconds": (b - a).total_seconds()} for a, b in self.gaps],
            "spans": [s.as_dict() for s in self.spans],
            "chain_starts": self.chain_starts,
            "chain_breaks": self.chain_breaks,
            "failed_runs": self.failed_runs,
            "events_per_hour": self.events_per_hour,
            "audited": self.audited,
        }


AUDIT_RESULTS = ("clean", "repaired", "missing", "unexpected", "failed")


def audit_of(span: dict, audited: list[dict]) -> dict:
    """How the hours a covered span touches were audited: counts per result, ``not_audited``, and ``verdict``:
    ``audited`` (every hour clean or repaired), ``missing`` (an hour with missing events), else ``partly``."""
    since, until = moment(span["since"]), moment(span["until"])
    hour = since.replace(minute=0, second=0, microsecond=0)
    by_hour = {a["hour"]: a["result"] for a in audited}
    counts = dict.fromkeys(AUDIT_RESULTS + ("not_audited",), 0)
    while hour < until:
        result = by_hour.get(text(hour), "not_audited")
        counts[result if result in counts else "not_audited"] += 1
        hour += _dt.timedelta(hours=1)
    hours = sum(counts.values())
    verdict = "missing" if counts["missing"] else "audited" if counts["clean"] + counts["repaired"] == hours \
        else "partly"
    return {"hours": hours, **counts, "verdict": verdict}


def audited_hours(audits: list[dict], org_url: str) -> list[dict]:
    """The org's audited hours, each as the newest audit gave it (whatever its selection), in time order."""
    from tools.audit.hours import latest_hours

    shown = ("result", "okta", "missing", "unexpected", "repaired", "error", "audit_id", "audited_at")
    return [{"hour": text(hour), **{k: found[k] for k in shown if k in found}}
            for hour, found in sorted(latest_hours(audits, org_url).items())]


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



def many_org_backfill(manifest: dict) -> list[str]:
    """The org URLs a many-org run's manifest covers: each org of ``org_sources`` whose source finished."""
    reports = manifest.get("orgs") if isinstance(manifest.get("orgs"), dict) else {}
    found = []
    for source in manifest.get("org_sources") or []:
        described = source.get("okta") if isinstance(source, dict) else None
        status = (reports.get(source.get("org")) or {}).get("status", "ok") if isinstance(source, dict) else ""
        if isinstance(described, str) and described and status == "ok":
            found.append(described.split(" ", 1)[0].rstrip("/"))
    return found


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

    def bucket(record, kind, org=None):
        org = org or org_of(record)
        if org:
            by_org.setdefault(org, {"manifests": [], "links": [], "failed": []})[kind].append(record)

    for manifest in records.get("manifests", []):
        for org in many_org_backfill(manifest):
            bucket(manifest, "manifests", org)
        bucket(manifest, "manifests")
    for link in records.get("cursors", []) + records.get("windows", []):
        bucket(link, "links")
    for failed in records.get("failed", []):
        bucket(failed, "failed")
    for audit in records.get("audits", []):  # an org that was only audited is shown too
        if isinstance(audit.get("org_url"), str) and audit["org_url"]:
            by_org.setdefault(audit["org_url"].rstrip("/"), {"manifests": [], "links": [], "failed": []})
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
        coverage.audited = audited_hours(records.get("audits", []), org)
        result.append(coverage)
    return result



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
