"""Schema drift reports: what kept events held beyond the documented schema, as plain data (no Beam, no I/O).

A *drift report* is a ``dict`` that pickles, travels as JSON (batch manifests, window records, decode-process
messages) and adds up (:func:`merge`)::

    {event_type: {
        "events": 7513,     # kept events of the type (all of them, watched or not)
        "unwatched": 0,     # of which not watched, the watch being over its CPU budget (transforms/drift.py)
        "walked": 41,       # of the watched, walked key by key (the others took a walked event's paths)
        "paths": {          # undocumented JSON paths (not a column of schemas/fields.py), leaves only
            "debugContext.debugData.requestId": {
                "events": 7513,                 # kept events that held it
                "types": ["string"],            # the JSON types of its values in the walked events
                "first": "2026-11-17T00:00:03.250000Z", "last": "...",   # their published range
            }, ...},
        "more_paths": 0,    # path sightings left out past MAX_PATHS distinct paths of the type
        "changed": {"actor.id": {"number": 3}},   # documented fields holding another JSON type: events by type
    }}

What the lake knew before (:mod:`sinks.lake.drift`) adds ``"new": true`` to a type kept for the first time in the
lake and to each path seen there for the first time; :func:`news` lists them.

Made by :class:`transforms.drift.DriftWatch`, summed into the batch manifest (``drift``), a streaming window's
record and the run summary, counted as metrics (:func:`common.metrics.count_drift`), and read back by
``okta-personal-lake report``.
"""

from __future__ import annotations

import datetime as _dt

#: Distinct undocumented paths kept per event type in one report; sightings of more are only counted
#: (``more_paths``), so an open map keyed by ids cannot grow a report (or the metrics) without bound.
MAX_PATHS = 500


def published_text(moment: _dt.datetime) -> str:
    """A published time as the reports write it (UTC, microseconds, ``Z``): ordered as text is ordered."""
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def type_entry(report: dict, event_type: str) -> dict:
    """The report's entry of ``event_type`` (made empty when absent)."""
    entry = report.get(event_type)
    if entry is None:
        entry = report[event_type] = {"events": 0, "unwatched": 0, "walked": 0, "paths": {}, "more_paths": 0,
                                      "changed": {}}
    return entry


def add_path(entry: dict, path: str, events: int, types, first: str | None, last: str | None) -> None:
    """Count ``events`` sightings of ``path`` in a type's entry (its types and published range widened)."""
    paths = entry["paths"]
    found = paths.get(path)
    if found is None:
        if len(paths) >= MAX_PATHS:
            entry["more_paths"] += events
            return
        found = paths[path] = {"events": 0, "types": [], "first": first, "last": last}
    found["events"] += events
    if types:
        have = found["types"]
        for name in types:
            if name not in have:  # (most calls add nothing new: a take adds every signature's paths)
                found["types"] = sorted({*have, *types})
                break
    if first is not None and (found["first"] is None or first < found["first"]):
        found["first"] = first
    if last is not None and (found["last"] is None or last > found["last"]):
        found["last"] = last


def add_change(entry: dict, path: str, got: str, events: int = 1) -> None:
    """Count ``events`` kept events whose documented ``path`` held a value of JSON type ``got``."""
    by_type = entry["changed"].setdefault(path, {})
    by_type[got] = by_type.get(got, 0) + events


def merge(into: dict, report: dict | None) -> dict:
    """Add ``report`` to ``into`` (in place; also returned). A ``new`` mark survives the merge."""
    for event_type, entry in (report or {}).items():
        target = type_entry(into, event_type)
        target["events"] += entry.get("events", 0)
        target["unwatched"] += entry.get("unwatched", 0)
        target["walked"] += entry.get("walked", 0)
        target["more_paths"] += entry.get("more_paths", 0)
        if entry.get("new"):
            target["new"] = True
        for path, seen in entry.get("paths", {}).items():
            add_path(target, path, seen["events"], seen.get("types"), seen.get("first"), seen.get("last"))
            if seen.get("new") and path in target["paths"]:
                target["paths"][path]["new"] = True
        for path, by_type in entry.get("changed", {}).items():
            for got, events in by_type.items():
                add_change(target, path, got, events)
    return into


def sorted_report(report: dict) -> dict:
    """The report with its types, paths and changes in name order (how manifests and records store it)."""
    out = {}
    for event_type in sorted(report):
        entry = dict(report[event_type])
        entry["paths"] = dict(sorted(entry["paths"].items()))
        entry["changed"] = {path: dict(sorted(by_type.items())) for path, by_type in sorted(entry["changed"].items())}
        out[event_type] = entry
    return out


def news(report: dict) -> tuple[list[str], dict[str, list[str]]]:
    """``(types kept for the first time in the lake, {type: paths seen there for the first time})``."""
    types = sorted(t for t, entry in report.items() if entry.get("new"))
    paths = {t: sorted(p for p, seen in entry["paths"].items() if seen.get("new")) for t, entry in report.items()}
    return types, {t: found for t, found in sorted(paths.items()) if found}


def without_news(report: dict) -> dict:
    """A copy of ``report`` without ``new`` marks (a report of what was seen, before the lake is asked)."""
    out = {}
    for event_type, entry in report.items():
        copied = {k: v for k, v in entry.items() if k != "new"}
        copied["paths"] = {p: {k: v for k, v in seen.items() if k != "new"} for p, seen in entry["paths"].items()}
        out[event_type] = copied
    return out


def only_news(report: dict) -> dict:
    """The ``new`` marks of ``report`` alone, every count 0 (merged into a report that has the counts)."""
    out: dict = {}
    for event_type, entry in report.items():
        paths = {p: seen for p, seen in entry["paths"].items() if seen.get("new")}
        if not entry.get("new") and not paths:
            continue
        target = type_entry(out, event_type)
        if entry.get("new"):
            target["new"] = True
        for path in paths:
            target["paths"][path] = {"events": 0, "types": [], "first": None, "last": None, "new": True}
    return out
