"""The small JSON records, next to the run manifests, that let ``okta-personal-lake coverage`` prove coverage.

Beside ``LAKE/_runs/<run_id>.json`` (the manifest of a committed batch run,
:mod:`sinks.lake.beam`) the pipeline leaves:

- ``_runs/<run_id>.cursor.json``: an incremental run stored its cursor; written
  only after ``--state`` was written, so it proves the polling chain moved on.
- ``_runs/windows/<job>-<window>-<n>.json``: the Okta tail committed a window
  and its cursor (one per commit; the tail's counterpart of the above).
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

from storage import fs
from transforms import jsonio

RUNS_DIR = "_runs"
CURSOR_SUFFIX = ".cursor.json"
FAILED_SUFFIX = ".failed.json"
WINDOWS_DIR = "windows"
AUDITS_DIR = "audits"


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


def write_window_record(lake: str, name: str, link: dict) -> str:
    path = fs.join(lake, RUNS_DIR, WINDOWS_DIR, f"{name}.json")
    fs.write_bytes(path, jsonio.dumps(link))
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
    paths += [(p, "audits") for p in fs.list_files(fs.join(runs, AUDITS_DIR, "*.json"))]
    for path, kind in sorted(paths):
        try:
            record = jsonio.loads(fs.read_bytes(path))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except Exception as exc:  # noqa: BLE001 - one bad record must not hide the others (it can only hide coverage)
            found["unreadable"].append(f"{path}: {exc.__class__.__name__}: {exc}"[:300])
            continue
        found[kind].append(record)
    return found


def _kind(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "cursors" if name.endswith(CURSOR_SUFFIX) else "failed" if name.endswith(FAILED_SUFFIX) else "manifests"
