"""The small JSON records, next to the run manifests, that let ``okta-personal-lake coverage`` prove coverage.

Beside ``LAKE/_runs/<run_id>.json`` (the manifest of a committed batch run,
:mod:`sinks.lake.beam`) the pipeline leaves:

- ``_runs/<run_id>.cursor.json``: an incremental run stored its cursor; written
  only after ``--state`` was written, so it proves the polling chain moved on.
- ``_runs/windows/<job>-<hour>-<process>.jsonl``: the Okta tail committed a window
  and its cursor (one line per commit; the tail's counterpart of the above), one file per
  job, UTC hour of the window and process (:func:`write_window_record`). Lakes written
  before hold one ``_runs/windows/<job>-<window>-<n>.json`` per commit: both are read.
- ``_runs/<run_id>.failed.json``: a run failed, with its one error line.
- ``_runs/audits/<audit_id>-<org>.json``: ``okta-personal-lake audit`` compared what Okta holds for
  some hours of one org with what the lake holds, with this result per hour (:mod:`tools.audit`).

A cursor record holds the chain link: the cursor the chain started from
(``cursor_from``, empty after a ``--lookback`` start) and the one it stored
(``cursor_to``), and the time span it covers, ``[span_since, span_until)``:
from where the previous link was caught up (or the lookback start) to where
this one was. No Beam here: the batch StoreCursor, the streaming tail and
the CLI all write through these functions.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import uuid as _uuid

from storage import fs
from transforms import jsonio

RUNS_DIR = "_runs"
CURSOR_SUFFIX = ".cursor.json"
FAILED_SUFFIX = ".failed.json"
WINDOWS_DIR = "windows"
AUDITS_DIR = "audits"
WINDOW_RECORDS_SUFFIX = ".jsonl"


def now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def cursor_link(state, kind: str, **extra) -> dict:
    """The chain link of a stored cursor (``state``: a :class:`sources.okta.state.CursorState`)."""
    started = dict(getattr(state, "started", None) or {})
    return {
        "kind": kind,
        "run_id": state.run_id,
        "org_url": state.org_url,
        "filter": state.filter,
        "started_from": started.get("started_from", ""),  # "cursor" or "lookback"
        "cursor_from": started.get("cursor_from", ""),
        "cursor_from_run": started.get("cursor_from_run", ""),
        "cursor_to": state.next_url,
        "span_since": started.get("span_since", ""),
        "span_until": state.caught_up_at,
        "started_at": started.get("started_at", ""),  # when the chain was started (an unmatched start's bound)
        "stored_at": state.updated_at or now_text(),
        **extra,
    }


def write_cursor_record(lake: str, run_id: str, link: dict) -> str:
    path = fs.join(lake, RUNS_DIR, f"{run_id}{CURSOR_SUFFIX}")
    fs.write_bytes(path, jsonio.dumps(link))
    return path


class _OpenHour:
    """The window records this process wrote for one job in one hour, and the file that holds them."""

    def __init__(self, path: str):
        self.path, self.lines = path, []


_OPEN: dict[tuple[str, str], _OpenHour] = {}  # (lake, job) -> its current hour's records
_OPEN_LOCK = threading.Lock()
_PROCESS = {"pid": None, "token": ""}


def process_token() -> str:
    """Tells this process's files apart from another's (a restart, a second worker, a fork) with the same job."""
    if _PROCESS["pid"] != os.getpid():
        _PROCESS.update(pid=os.getpid(), token=_uuid.uuid4().hex[:8])
        _OPEN.clear()  # a forked child starts its own files
    return _PROCESS["token"]


def window_hour(link: dict) -> str:
    """``20261125T23`` for a record of window ``w20261125T233000Z`` (the current UTC hour without one)."""
    window = str(link.get("window") or "")
    if len(window) >= 12 and window.startswith("w") and window[9] == "T":
        return window[1:12]
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H")


def write_window_record(lake: str, name: str, link: dict) -> str:
    """Add a committed window's chain link to ``_runs/windows/<job>-<hour>-<process>.jsonl``; returns its path.

    The file holds every record this process wrote for the job in that UTC hour (of the window), one JSON
    object per line, and is written whole each time (atomically: a temporary name and a rename on local disk,
    one upload on an object store), so an hour of windows is one file, not one per window. Only this
    process writes it, so no write can lose another's records. ``name`` (``<job>-<window>-<n>``) is kept
    in the record as ``record``.
    """
    job = str(link.get("run_id") or name.rsplit("-", 2)[0])
    hour = window_hour(link)
    line = jsonio.dumps({**link, "record": name})
    with _OPEN_LOCK:
        token = process_token()
        current = _OPEN.get((lake, job))
        path = fs.join(lake, RUNS_DIR, WINDOWS_DIR, f"{job}-{hour}-{token}{WINDOW_RECORDS_SUFFIX}")
        if current is None or current.path != path:  # a new hour: its own file (the last one is complete)
            current = _OPEN[(lake, job)] = _OpenHour(path)
        current.lines.append(line)
        fs.write_bytes(path, b"\n".join(current.lines) + b"\n")
    return path


def write_audit_record(lake: str, name: str, record: dict) -> str:
    path = fs.join(lake, RUNS_DIR, AUDITS_DIR, f"{name}.json")
    fs.write_bytes(path, jsonio.dumps(record))
    return path


def write_failed_record(lake: str, run_id: str, record: dict) -> str:
    path = fs.join(lake, RUNS_DIR, f"{run_id}{FAILED_SUFFIX}")
    fs.write_bytes(path, jsonio.dumps({"run_id": run_id, "failed_at": now_text(), **record}))
    return path


def record_quietly(write, *args) -> str | None:
    """Write a record; a failure is a warning, not a failed run (the report then shows a gap, never more)."""
    try:
        return write(*args)
    except Exception as exc:  # noqa: BLE001 - the data and the cursor are committed already
        logging.getLogger(__name__).warning("could not write the coverage record: %s: %s",
                                            exc.__class__.__name__, exc)
        return None


def read_all(lake: str) -> dict[str, list[dict]]:
    """Every record under ``LAKE/_runs``: ``manifests``, ``cursors``, ``windows``, ``failed`` and ``audits``."""
    found: dict[str, list] = {"manifests": [], "cursors": [], "windows": [], "failed": [], "audits": [],
                              "unreadable": []}
    runs = fs.join(lake, RUNS_DIR)
    paths = [(p, _kind(p)) for p in fs.list_files(fs.join(runs, "*.json"))]
    paths += [(p, "windows") for p in fs.list_files(fs.join(runs, WINDOWS_DIR, "*.json"))]
    paths += [(p, "windows") for p in fs.list_files(fs.join(runs, WINDOWS_DIR, "*" + WINDOW_RECORDS_SUFFIX))]
    paths += [(p, "audits") for p in fs.list_files(fs.join(runs, AUDITS_DIR, "*.json"))]
    for path, kind in sorted(paths):
        try:
            data = fs.read_bytes(path)
        except Exception as exc:  # noqa: BLE001 - one bad record must not hide the others (it can only hide coverage)
            found["unreadable"].append(f"{path}: {exc.__class__.__name__}: {exc}"[:300])
            continue
        lines = data.splitlines() if path.endswith(WINDOW_RECORDS_SUFFIX) else [data]
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = jsonio.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except Exception as exc:  # noqa: BLE001 - as above: one bad line hides only itself
                where = f"{path} line {number}" if len(lines) > 1 else path
                found["unreadable"].append(f"{where}: {exc.__class__.__name__}: {exc}"[:300])
                continue
            found[kind].append(record)
    return found


def _kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "cursors" if name.endswith(CURSOR_SUFFIX) else "failed" if name.endswith(FAILED_SUFFIX) else "manifests"
