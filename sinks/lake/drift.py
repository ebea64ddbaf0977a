"""What schema drift a lake has seen: ``LAKE/_drift/``, so a run can say what is new, and the report read it back.

After its commit, a run (the batch manifest's :class:`sinks.lake.beam.FinishRun`, a streaming window's
:class:`streaming.window_buffer.WindowBuffer`) hands its drift report (:mod:`common.drift`) to
:meth:`DriftRegistry.register`, which marks ``new`` what the lake had not seen:

- ``_drift/types/<event type>.json``: the first run that kept the type, made only if absent
  (:func:`storage.fs.create_if_absent`), so of runs keeping a new type at the same moment exactly one calls it new;
- ``_drift/paths/<event type>/<path>.json``: the same for each undocumented path of the type (the name is the
  path, percent-encoded; a hash when that is too long). One listing per type and process tells the paths known
  already, so a run costs a request per type, plus one per new path.

A stream's windows' reports are kept added up per job, UTC hour (of the window) and process as
``_drift/windows/<job>-<hour>-<process>.json``, written whole after each window, so an hour of windows is one file
(a batch run's report is in its manifest, ``drift``). A lake written before drift was watched learns its types
and paths from its next run, which calls them new once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.parse

from common.drift import merge, sorted_report
from sinks.lake.records import RUNS_DIR, now_text, process_token, window_hour
from storage import fs
from transforms import jsonio

DRIFT_DIR = "_drift"
_LONGEST_NAME = 180


def file_name(text: str) -> str:
    """A type's or path's file name (``.json`` added): percent-encoded, or its hash when too long for a file name."""
    quoted = urllib.parse.quote(text, safe="")
    if len(quoted) > _LONGEST_NAME:
        quoted = "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return quoted + ".json"


class DriftRegistry:
    """``LAKE/_drift/`` as one process sees it (what it learnt is remembered: a stream asks once per type)."""

    def __init__(self, lake: str):
        self.lake = lake
        self._types: set = set()
        self._paths: dict[str, set] = {}  # event type -> file names of its known paths

    def register(self, report: dict, run_id: str) -> dict:
        """Record what ``report`` saw and mark in it (``"new": true``) what the lake saw for the first time;
        returns ``report``."""
        for event_type, entry in report.items():
            folder = fs.join(self.lake, DRIFT_DIR, "paths", file_name(event_type)[:-5])
            if event_type not in self._types:
                first = {"event_type": event_type, "run_id": run_id, "registered_at": now_text(),
                         "first_published": _first(entry["paths"].values())}
                if fs.create_if_absent(fs.join(self.lake, DRIFT_DIR, "types", file_name(event_type)),
                                       jsonio.dumps(first)):
                    entry["new"] = True
                self._types.add(event_type)
            known = self._paths.get(event_type)
            if known is None:
                known = self._paths[event_type] = {p.rsplit("/", 1)[-1] for p in fs.list_files(fs.join(folder,
                                                                                                         "*.json"))}
            for path, seen in entry["paths"].items():
                name = file_name(path)
                if name in known:
                    continue
                first = {"event_type": event_type, "path": path, "run_id": run_id, "registered_at": now_text(),
                         "first_published": seen.get("first"), "types": seen.get("types", [])}
                if fs.create_if_absent(fs.join(folder, name), jsonio.dumps(first)):
                    seen["new"] = True
                known.add(name)
        return report

    def register_quietly(self, report: dict, run_id: str) -> bool:
        """:meth:`register`, a failure of the store being a warning (the rows are committed; only the ``new``
        marks are then missing): True when it worked."""
        try:
            self.register(report, run_id)
            return True
        except Exception as exc:  # noqa: BLE001 - drift is information: it never fails a committed run
            logging.getLogger(__name__).warning("could not record the schema drift in %s: %s: %s",
                                                fs.join(self.lake, DRIFT_DIR), exc.__class__.__name__, exc)
            return False


def _first(paths) -> str | None:
    found = [seen["first"] for seen in paths if seen.get("first")]
    return min(found) if found else None


#: (lake, job) -> [its current hour's file, that hour's drift added up, windows]: written whole after each window.
_HOURS: dict[tuple[str, str], list] = {}
_HOURS_LOCK = threading.Lock()


def write_window_record(lake: str, job: str, window: str, report: dict) -> str | None:
    """Add a streaming window's drift to ``_drift/windows/<job>-<hour>-<process>.json``; its path, or None, with a
    warning, when the store refused it (the next window's write holds this one's drift too).

    Only this process writes that file, whole each time, so an hour of windows is one file and no write loses
    another's report."""
    with _HOURS_LOCK:
        path = fs.join(lake, DRIFT_DIR, "windows", f"{job}-{window_hour({'window': window})}-{process_token()}.json")
        current = _HOURS.get((lake, job))
        if current is None or current[0] != path:  # a new hour (or a forked process): its own file
            current = _HOURS[(lake, job)] = [path, {}, 0]
        merge(current[1], report)
        current[2] += 1
        record = {"kind": "windows", "run_id": job, "last_window": window, "windows": current[2],
                  "committed_at": now_text(), "drift": sorted_report(current[1])}
        try:
            fs.write_bytes(path, jsonio.dumps(record))
            return path
        except Exception as exc:  # noqa: BLE001 - as register_quietly
            logging.getLogger(__name__).warning("could not write the window's drift record: %s: %s",
                                                exc.__class__.__name__, exc)
            return None


def sightings(lake: str) -> list[dict]:
    """Every drift report the lake holds, oldest first: ``{"run_id", "at", "drift"}`` from each batch manifest
    (``_runs/*.json``) and streaming window record (``_drift/windows/*.json``) that has one."""
    found = []
    paths = fs.list_files(fs.join(lake, RUNS_DIR, "*.json")) + fs.list_files(fs.join(lake, DRIFT_DIR, "windows",
                                                                                     "*.json"))
    for path in paths:
        if path.endswith((".cursor.json", ".failed.json")):
            continue
        try:
            record = jsonio.loads(fs.read_bytes(path))
        except Exception:  # noqa: BLE001 - an unreadable record hides only its own sightings
            continue
        if isinstance(record, dict) and record.get("drift"):
            found.append({"run_id": record.get("run_id", ""), "at": record.get("committed_at", ""),
                          "drift": record["drift"]})
    return sorted(found, key=lambda r: (r["at"], r["run_id"]))


def first_sightings(lake: str) -> tuple[dict, dict]:
    """``({event type: its record}, {(event type, path): its record})`` from ``_drift/types`` and ``_drift/paths``."""
    types, paths = {}, {}
    for path in fs.list_files(fs.join(lake, DRIFT_DIR, "types", "*.json")):
        record = _read(path)
        if record:
            types[record["event_type"]] = record
    for path in fs.list_files(fs.join(lake, DRIFT_DIR, "paths", "*", "*.json")):
        record = _read(path)
        if record:
            paths[(record["event_type"], record["path"])] = record
    return types, paths


def _read(path: str) -> dict | None:
    try:
        record = jsonio.loads(fs.read_bytes(path))
    except Exception:  # noqa: BLE001 - as in sightings
        return None
    return record if isinstance(record, dict) else None


def total(lake: str) -> dict:
    """Every sighting's drift added up (one report)."""
    out: dict = {}
    for sighting in sightings(lake):
        merge(out, sighting["drift"])
    return out
