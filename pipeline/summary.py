"""The end-of-run summary: counts from Beam metrics, files and schema drift from the run manifest."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from apache_beam.metrics.metric import MetricsFilter

from common.drift import news
from common.metrics import (
    API_COUNTERS,
    BIGQUERY_COUNTERS,
    COUNTERS,
    ICEBERG_COUNTERS,
    NAMESPACE,
    ORG_NAMESPACE,
    ORG_SEPARATOR,
)
from schemas.fields import COLUMNS
from storage import fs
from transforms import jsonio


def counter_totals(result, namespace: str = NAMESPACE) -> dict[str, int]:
    """Committed counter values of the pipeline's namespace, summed over steps."""
    totals: dict[str, int] = {}
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    for item in query["counters"]:
        value = item.committed if item.committed is not None else item.attempted
        totals[item.key.metric.name] = totals.get(item.key.metric.name, 0) + int(value or 0)
    return totals


#: The right side of the identity ``events_read == sum(TERMS)``, as the summary counts them.
TERMS = ("events_written", "filtered_out", "duplicates", "dead_letters", "withheld")


def committed_dead_letters(counts: dict) -> dict:
    """``counts`` with ``dead_letters`` (and each stage's) made the committed ones, in place.

    The counters count a dead letter when it is made; a failed org's are then withheld (counted in
    ``withheld`` and ``withheld_dead_letters``), so they are taken out of ``dead_letters`` here.
    """
    for name in [n for n in counts if n.startswith("withheld_dead_letters")]:
        target = "dead_letters" + name[len("withheld_dead_letters"):]
        if target in counts:
            counts[target] -= counts[name]
    return counts


@dataclass
class RunSummary:
    run_id: str
    lake: str
    counts: dict[str, int]
    manifest: dict = field(default_factory=dict)
    seconds: float = 0.0
    by_org: dict = field(default_factory=dict)  # org -> {counter: value} (runs that know their orgs)
    drift: dict = field(default_factory=dict)  # the run's schema drift report (common/drift.py)

    @classmethod
    def collect(cls, result, lake: str, run_id: str, started: _dt.datetime, manifest_path: str) -> RunSummary:
        seconds = (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds()
        manifest = jsonio.loads(fs.read_bytes(manifest_path)) if fs.exists(manifest_path) else {}
        by_org: dict = {}
        for name, value in counter_totals(result, ORG_NAMESPACE).items():
            org, _, counter_name = name.rpartition(ORG_SEPARATOR)
            by_org.setdefault(org, {})[counter_name] = value
        for org in manifest.get("orgs", {}):
            by_org.setdefault(org, {})
        for counts in by_org.values():
            committed_dead_letters(counts)
        return cls(run_id, lake, committed_dead_letters(counter_totals(result)), manifest, seconds,
                   dict(sorted(by_org.items())), manifest.get("drift", {}))

    @staticmethod
    def org_balanced(counts: dict) -> bool:
        """The identity for one org: read = written + filtered + duplicates + dead letters + withheld."""
        return counts.get("events_read", 0) == sum(counts.get(n, 0) for n in TERMS)

    @property
    def failed_orgs(self) -> dict[str, str]:
        """org -> its error line, for the orgs whose source stopped (many-org runs)."""
        return {org: entry.get("error") or "failed" for org, entry in self.manifest.get("orgs", {}).items()
                if entry.get("status") != "ok"}

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)

    @property
    def accounted(self) -> int:
        return sum(self.get(name) for name in TERMS)

    @property
    def balanced(self) -> bool:
        return self.get("events_read") == self.accounted and all(
            self.org_balanced(counts) for counts in self.by_org.values())

    def render(self) -> str:
        read = self.get("events_read")
        rate = read / self.seconds if self.seconds > 0 else 0.0
        lines = [f"run {self.run_id} -> {self.lake}  ({self.seconds:,.1f} s, {rate:,.0f} events/s)"]
        for name, meaning in COUNTERS.items():
            label = name.replace("_", " ")
            lines.append(f"  {label:<22}{self.get(name):>12,}   {meaning}")
        for name in sorted(self.counts):
            if name.startswith("dead_letters_"):
                lines.append(f"    {name[13:] + ' stage':<20}{self.get(name):>12,}")
        if any(name in self.counts for name in API_COUNTERS):
            lines.append("  okta api:")
            for name, meaning in API_COUNTERS.items():
                lines.append(f"    {name[5:] if name.startswith('okta_') else name:<20}"
                             f"{self.get(name):>12,}   {meaning}")
        if any(name in self.counts for name in BIGQUERY_COUNTERS):
            lines.append("  bigquery:")
            for name, meaning in BIGQUERY_COUNTERS.items():
                lines.append(f"    {name[9:]:<20}{self.get(name):>12,}   {meaning}")
        if any(name in self.counts for name in ICEBERG_COUNTERS):
            lines.append("  iceberg:")
            for name, meaning in ICEBERG_COUNTERS.items():
                lines.append(f"    {name[8:]:<20}{self.get(name):>12,}   {meaning}")
        verdict = "OK" if self.balanced else "MISMATCH"
        lines.append(
            f"  check: read {read:,} = written {self.get('events_written'):,} + filtered "
            f"{self.get('filtered_out'):,} + duplicates {self.get('duplicates'):,} + dead letters "
            f"{self.get('dead_letters'):,} + withheld {self.get('withheld'):,} -> {verdict}")
        if self.by_org:
            lines.append("  per org:   read = written + filtered + duplicates + dead letters + withheld")
            failed = self.failed_orgs
            for org, counts in self.by_org.items():
                verdict = "OK" if self.org_balanced(counts) else "MISMATCH"
                state = f"  FAILED: {failed[org]}" if org in failed else ""
                lines.append(
                    f"    {org}: {counts.get('events_read', 0):,} = {counts.get('events_written', 0):,} + "
                    f"{counts.get('filtered_out', 0):,} + {counts.get('duplicates', 0):,} + "
                    f"{counts.get('dead_letters', 0):,} + {counts.get('withheld', 0):,} -> {verdict} "
                    f"({counts.get('rows_written', 0):,} rows)"
                    + state)
        partitions = self.manifest.get("partitions", [])
        if partitions:
            lines.append("  files per partition:")
            for part in partitions:
                lines.append(f"    {part['partition']}: {len(part['files'])} file(s), "
                             f"{part['rows']:,} rows, {part['events']:,} events")
        for dead in self.manifest.get("dead_letter_files", []):
            lines.append(f"  dead letters: {dead['file']} ({dead['records']:,} records)")
        return "\n".join(lines + drift_lines(self.drift))


MAX_NEW_PATHS = 40  # listed per type (an open map keyed by ids can bring hundreds)
_EXPECTED = {c.path: "a boolean" if c.type == "bool" else "a string" for c in COLUMNS}


def drift_lines(drift: dict) -> list[str]:
    """The summary's schema drift section (none without drift): per kept event type, whether the lake kept it
    for the first time, its documented fields of another JSON type, each undocumented path new to the lake, and
    how many known ones it held (the manifest and ``okta-personal-lake report`` list them all)."""
    if not drift:
        return []
    new_types, new_paths = news(drift)
    lines = [f"  schema drift: {len(new_types)} new event type(s), {sum(map(len, new_paths.values()))} new "
             "undocumented path(s) in this lake (docs: operations/drift.md)"]
    for event_type, entry in drift.items():
        state = "  NEW: first kept in this lake" if entry.get("new") else ""
        unwatched = entry.get("unwatched", 0)
        watched = f" ({unwatched:,} not watched: the watch's CPU budget)" if unwatched else ""
        lines.append(f"    {event_type}: {entry['events']:,} kept events{watched}, {len(entry['paths'])} undocumented "
                     f"path(s){state}")
        for path, by_type in entry["changed"].items():
            found = ", ".join(f"{got} in {n:,}" for got, n in by_type.items())
            expected = _EXPECTED.get(path, "an array" if path == "target" else "an object")
            lines.append(f"      type changed: {path} (documented as {expected}): {found} event(s)")
        fresh = [(path, seen) for path, seen in entry["paths"].items() if seen.get("new")]
        known = len(entry["paths"]) - len(fresh)
        if entry.get("new"):  # every path of a new type is new: the manifest and the report list them
            fresh, known = [], 0
        shown = fresh[:MAX_NEW_PATHS]
        width = max((len(path) for path, _ in shown), default=0)
        for path, seen in shown:
            lines.append(f"      new path: {path:<{width}} {seen['events']:>10,}  {'/'.join(seen['types'])}")
        if len(fresh) > len(shown):
            lines.append(f"      ... {len(fresh) - len(shown)} more new path(s) (the manifest and report list them)")
        if known:
            lines.append(f"      known paths: {known} (in the manifest's drift; okta-personal-lake report lists them)")
        if entry.get("more_paths"):
            lines.append(f"      more paths: {entry['more_paths']:,} sightings past the {len(entry['paths'])} listed")
    return lines
