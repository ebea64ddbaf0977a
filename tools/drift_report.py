"""The schema drift section of ``okta-personal-lake report``: every sighting a lake holds, path by path.

Reads the drift reports the runs left (each batch manifest's ``drift``, each streaming window's record under
``_drift/windows/``) and what the lake saw first (``_drift/types``, ``_drift/paths``: :mod:`sinks.lake.drift`),
and lists, per event type, each undocumented path with the kept events that held it, its first and last
sighting (the published time of the first and last such event, and the run or stream that read it) and the
JSON types of its values in the walked events; then the documented fields that held another JSON type.
"""

from __future__ import annotations

from sinks.lake.drift import first_sightings, sightings


def path_sightings(lake: str) -> dict:
    """``{event type: {"events", "runs", "first_run", "paths": {path: {"events", "types", "first", "first_run",
    "last", "last_run"}}, "changed": {path: {got: events}}}}`` over every sighting of the lake."""
    out: dict = {}
    for sighting in sightings(lake):
        run = sighting["run_id"]
        for event_type, entry in sighting["drift"].items():
            found = out.setdefault(event_type, {"events": 0, "runs": 0, "paths": {}, "changed": {}})
            found["events"] += entry.get("events", 0)
            found["runs"] += 1
            for path, seen in entry.get("paths", {}).items():
                item = found["paths"].setdefault(path, {"events": 0, "types": set(), "first": None, "first_run": "",
                                                        "last": None, "last_run": ""})
                item["events"] += seen["events"]
                item["types"] |= set(seen.get("types", []))
                if seen.get("first") and (item["first"] is None or seen["first"] < item["first"]):
                    item["first"], item["first_run"] = seen["first"], run
                if seen.get("last") and (item["last"] is None or seen["last"] >= item["last"]):
                    item["last"], item["last_run"] = seen["last"], run
            for path, by_type in entry.get("changed", {}).items():
                changed = found["changed"].setdefault(path, {})
                for got, events in by_type.items():
                    changed[got] = changed.get(got, 0) + events
    return out


def drift_section(lake: str) -> list[str]:
    """The report's lines (none when the lake holds no drift report)."""
    found = path_sightings(lake)
    if not found:
        return []
    first_types, _ = first_sightings(lake)
    lines = ["", f"schema drift of the kept events (run manifests and {lake}/_drift):"]
    for event_type in sorted(found):
        entry = found[event_type]
        first = first_types.get(event_type)
        since = f"; first kept by {first['run_id']} ({first['registered_at']})" if first else ""
        lines.append(f"  {event_type}: {entry['events']:,} kept events in {entry['runs']} run(s) or window(s){since}")
        for path, by_type in sorted(entry["changed"].items()):
            lines.append(f"    type changed: {path}: " + ", ".join(f"{got} in {n:,} event(s)"
                                                                    for got, n in sorted(by_type.items())))
        rows = [("path", "events", "types", "first seen (published, run)", "last seen (published, run)")]
        for path, item in sorted(entry["paths"].items()):
            rows.append((path, f"{item['events']:,}", "/".join(sorted(item["types"])),
                         f"{item['first']} {item['first_run']}", f"{item['last']} {item['last_run']}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            lines.append("    " + "  ".join(cell.rjust(w) if i == 1 else cell.ljust(w)
                                            for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return lines
