"""The run's stderr in one format, ``--log_format=text`` (default) or ``json``, library records included.

The run's own lines are ``print(..., file=sys.stderr)`` (progress, window
lines, warnings, the one-line error) and Python ``logging`` records: the
Okta client's, the libraries' (pyiceberg's "Commit failed due to a
concurrent update, retrying", Beam's with ``--verbose``) and Python
warnings (``warnings.warn``, captured as records of ``py.warnings``).
Every record reaching the root logger goes through one handler in the
run's format; Python's plain stderr handler, which Beam's
``logging.basicConfig()`` installs (``WARNING:name:msg``), is set aside while
the run lasts.

With ``text`` a record is written like the run's own lines: ``warning: ``
or ``error: `` (by level), the logger's name, the message, e.g.
``warning: pyiceberg.table: Commit failed due to a concurrent update,
retrying (1/4) in 104 ms``; an exception attached to it is named in one
clause, not dumped as a traceback; further lines of a message are indented.
With ``json`` every line and record goes out as one object per line::

    {"severity": "INFO", "message": "window 2026-12-01 15:40:00-15:41:00: ...",
     "time": "2026-12-01T15:41:00.123456Z", "run_id": "20261201T154000Z-a1b2c3",
     "logger": "pipeline", "logging.googleapis.com/labels": {"run_id": "..."}}

``severity`` uses Cloud Logging's names (``ERROR`` for a line starting
``error:``, ``WARNING`` for ``warning:``, ``NOTICE`` for ``note:``); ``time``,
``message``, ``logging.googleapis.com/labels`` and ``logger`` are what Cloud
Logging's agent and most shippers (Fluent Bit, Vector) index; a record's
exception is its ``exception`` field. Nothing is added to what the run
already writes, and the run never writes a secret. With ``text`` the run's
own lines are left as they are.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import logging
import sys
import threading
import warnings

LABELS = "logging.googleapis.com/labels"
_PREFIXES = (("error:", "ERROR"), ("warning:", "WARNING"), ("note:", "NOTICE"))
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "ERROR": "ERROR", "CRITICAL": "CRITICAL"}
_TEXT_PREFIXES = {"WARNING": "warning: ", "ERROR": "error: ", "CRITICAL": "error: "}


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


class TextFormatter(logging.Formatter):
    """A record as the run's own lines look: ``warning: pyiceberg.table: Commit failed ...``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text = (str(error).splitlines() or [""])[0]
            message += f" ({error.__class__.__name__}{': ' + text if text else ''})"
        first, *more = message.splitlines() or [""]
        return "".join([_TEXT_PREFIXES.get(record.levelname, ""), record.name, ": ", first,
                        *("\n    " + line for line in more)])


class CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes (not as it was when the handler was made)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ sets it; the property decides
        pass


@contextlib.contextmanager
def formatted(log_format: str, run_id: str = ""):
    """Until the block ends: every root logging record, and with ``json`` every stderr line, in the run's
    format (see the module docstring); yields the RunContext."""
    context = RunContext(run_id)
    real = sys.stderr
    if log_format == "json":
        handler = logging.StreamHandler(real)
        handler.setFormatter(JsonFormatter(context))
    else:
        handler = CurrentStderr()
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    # Python's plain stderr handler (what logging.basicConfig() installs; Beam's PipelineOptions calls it) makes
    # way for ours; a handler someone chose (a host application's, a test's capture) stays.
    root.handlers = [h for h in saved_handlers if type(h) is not logging.StreamHandler] + [handler]
    capture = getattr(warnings.showwarning, "__module__", None) != "logging"  # not captured already
    logging.captureWarnings(True)
    if log_format == "json":
        sys.stderr = JsonLines(real, context)
    try:
        yield context
    finally:
        if log_format == "json":
            sys.stderr.flush()
            sys.stderr = real
        if capture:
            logging.captureWarnings(False)
        root.handlers = saved_handlers
