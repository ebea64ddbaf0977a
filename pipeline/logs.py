"""``--log_format=json``: every line a run writes on stderr becomes one JSON object.

The run's own lines are ``print(..., file=sys.stderr)`` (progress, window
lines, warnings, the one-line error) and Python ``logging`` records (the
Okta client, Beam with ``--verbose``). With ``json`` both go out as one
object per line::

    {"severity": "INFO", "message": "window 2026-12-01 15:40:00-15:41:00: ...",
     "time": "2026-12-01T15:41:00.123456Z", "run_id": "20261201T154000Z-a1b2c3",
     "logger": "pipeline", "logging.googleapis.com/labels": {"run_id": "..."}}

``severity`` uses Cloud Logging's names (``ERROR`` for a line starting
``error:``, ``WARNING`` for ``warning:``, ``NOTICE`` for ``note:``); ``time``,
``message``, ``logging.googleapis.com/labels`` and ``logger`` are what Cloud
Logging's agent and most shippers (Fluent Bit, Vector) index. Nothing is
added to what the run already writes, and the run never writes a secret.
The default, ``text``, leaves stderr as it is.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import logging
import sys
import threading

LABELS = "logging.googleapis.com/labels"
_PREFIXES = (("error:", "ERROR"), ("warning:", "WARNING"), ("note:", "NOTICE"))
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}


class RunContext:
    """What every record carries; ``run_id`` is filled in once the run has one."""

    def __init__(self, run_id: str = ""):
        self.run_id = run_id


def json_line(message: str, severity: str, logger: str, context: RunContext, **extra) -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    record = {"severity": severity, "message": message, "time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              "run_id": context.run_id, "logger": logger, LABELS: {"run_id": context.run_id}, **extra}
    return json.dumps(record, ensure_ascii=False, default=str)


def severity_of(line: str) -> str:
    stripped = line.lstrip().lower()
    for prefix, severity in _PREFIXES:
        if stripped.startswith(prefix):
            return severity
    return "INFO"


class JsonLines(io.TextIOBase):
    """A text stream that writes each complete line it is given as one JSON object to ``target``."""

    def __init__(self, target, context: RunContext, logger: str = "pipeline"):
        self._target, self._context, self._logger = target, context, logger
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                if line.strip():
                    self._target.write(json_line(line, severity_of(line), self._logger, self._context) + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending.strip():
                line, self._pending = self._pending, ""
                self._target.write(json_line(line, severity_of(line), self._logger, self._context) + "\n")
        self._target.flush()


class JsonFormatter(logging.Formatter):
    def __init__(self, context: RunContext):
        super().__init__()
        self._context = context

    def format(self, record: logging.LogRecord) -> str:
        extra = {}
        if record.exc_info:
            extra["exception"] = self.formatException(record.exc_info)
        return json_line(record.getMessage(), _LEVELS.get(record.levelname, "DEFAULT"), record.name,
                         self._context, **extra)


@contextlib.contextmanager
def formatted(log_format: str, run_id: str = ""):
    """With ``json``: stderr and the root logger write JSON lines until the block ends; yields the RunContext."""
    context = RunContext(run_id)
    if log_format != "json":
        yield context
        return
    real = sys.stderr
    handler = logging.StreamHandler(real)
    handler.setFormatter(JsonFormatter(context))
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    root.handlers = [handler]
    sys.stderr = JsonLines(real, context)
    try:
        yield context
    finally:
        sys.stderr.flush()
        sys.stderr = real
        root.handlers = saved_handlers
