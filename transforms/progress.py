"""A progress line on stderr every few seconds while a local run works.

Beam's local runners report metrics only when a run ends, so each worker
process keeps its own running totals here and a daemon thread prints them:
``progress: 120,000 events read (48,210/s), 45,002 rows staged``.
Enabled by the pipeline for local runners unless ``--quiet``.
"""

from __future__ import annotations

import sys
import threading
import time

_lock = threading.Lock()
_state = {"read": 0, "rows": 0, "started": None, "interval": 0.0, "thread": None, "label": ""}


def enable(interval: float, label: str = "") -> None:
    """Start printing every ``interval`` seconds in this process (idempotent)."""
    with _lock:
        if interval <= 0 or _state["thread"] is not None:
            return
        _state.update(interval=interval, started=time.monotonic(), label=label)
        thread = threading.Thread(target=_loop, name="okta-personal-progress", daemon=True)
        _state["thread"] = thread
        thread.start()


def record(read: int = 0, rows: int = 0) -> None:
    if _state["thread"] is None:
        return
    with _lock:
        _state["read"] += read
        _state["rows"] += rows


def line() -> str:
    elapsed = max(time.monotonic() - (_state["started"] or time.monotonic()), 1e-9)
    rate = _state["read"] / elapsed
    return (f"progress{_state['label']}: {_state['read']:,} events read ({rate:,.0f}/s), "
            f"{_state['rows']:,} rows staged, {elapsed:,.0f} s")


def _loop() -> None:
    while True:
        time.sleep(_state["interval"])
        print(line(), file=sys.stderr, flush=True)
