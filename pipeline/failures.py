"""Why a run failed, as a typed value that reaches the user's one line (never a Beam traceback), and its exit code.

:func:`failure` finds the project's own error (a :class:`~common.errors.LakeError`) under Beam's
wrapping: first by type along the exception's causes; when a local runner handed back only a
worker's traceback text, by the error's qualified class name (:func:`pipeline.runner.worker_error`);
otherwise the exception's own class and the last line of what it says. :func:`failure_from_line`
does the same for an org's error kept as a line (many-org runs). :func:`record_failure` leaves
that line in the lake for the coverage report.

Fatal or retryable: the line ends with ``(retryable: rerun as is)`` or ``(fatal: ...)`` and the exit
code follows it. A project error says which it is (``retryable``). A standard error that reaches the
top is judged here (a plain ``RuntimeError`` or ``OSError`` raised from another, with no errno of its
own, by that other one: Beam's ``[while running ...]`` copies, "cannot store the cursor ...: <cause>"):

- retryable: an I/O or network ``OSError`` - ``ConnectionError`` (reset, refused, broken pipe),
  ``TimeoutError``, an ``http.client`` error, a requests error of the connection (its
  ``ConnectionError``, ``Timeout``, ``ChunkedEncodingError``, ``RetryError``) and any other
  ``OSError`` not listed below (an I/O error of a store, a DNS failure); an error carrying an HTTP
  status (requests' ``HTTPError``, Google's API errors, botocore's) that is 5xx, 408 or 429;
- fatal: an ``OSError`` about a path or the disk, which a person must fix (not found, not a folder,
  already there, no permission, read-only, no space or quota left: by class or errno); a request
  that cannot be made (requests' ``InvalidURL``, ``MissingSchema``...); an HTTP status otherwise;
  and everything else (``ValueError``, ``TypeError``...: bad input or a bug a rerun meets again).

An error standing for others (Beam's ``BeamIOError``, ``exception_details``) is retryable when all of them are.

Exit codes: 0 done, 1 (:data:`EXIT_FATAL`) failed and a rerun as is fails the same way (or the
counts do not balance), 2 bad options, 75 (:data:`EXIT_RETRYABLE`, ``EX_TEMPFAIL``) failed and a
rerun as is may succeed.
"""

from __future__ import annotations

import errno
import http.client
import re
from dataclasses import dataclass

import requests

from common.errors import LakeError, error_classes
from pipeline.runner import worker_error

EXIT_FATAL = 1
EXIT_RETRYABLE = 75  # sysexits.h EX_TEMPFAIL (os.EX_TEMPFAIL exists on Unix only)
RETRYABLE, FATAL = "retryable: rerun as is", "fatal: fix the cause before rerunning"  # how an error line ends

# Standard errors recognised by name in a worker's traceback text (besides every project error).
STANDARD_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError,
    ConnectionResetError, ConnectionRefusedError, ConnectionAbortedError, BrokenPipeError, ConnectionError,
    TimeoutError, OSError, ValueError, http.client.IncompleteRead, http.client.RemoteDisconnected,
    requests.exceptions.ConnectionError, requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout,
    requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError,
)
_PATH_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)
_PATH_ERRNOS = {getattr(errno, name) for name in ("ENOENT", "ENOTDIR", "EISDIR", "EEXIST", "EACCES", "EPERM",
                                                   "EROFS", "ENOSPC", "EDQUOT", "ENAMETOOLONG") if hasattr(errno, name)}
_REQUESTS_RETRYABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                       requests.exceptions.ChunkedEncodingError, requests.exceptions.RetryError)
# Plain classes that only wrap an error (Beam's "[while running ...]", our "cannot store the cursor ...: <cause>").
_WRAPPERS = (Exception, RuntimeError, OSError)
_ERRNO = re.compile(r"\[Errno (\d+)\]")


@dataclass(frozen=True)
class Failure:
    kind: str  # the error's class name
    message: str
    error: type[BaseException] | None = None  # the class, when it is one the code raises
    retryable: bool = False  # whether rerunning as is may succeed

    def line(self) -> str:
        return f"{self.kind}: {self.message}"[:500]

    def verdict(self) -> str:
        return RETRYABLE if self.retryable else FATAL

    @property
    def exit_code(self) -> int:
        return EXIT_RETRYABLE if self.retryable else EXIT_FATAL


class RunFailed(LakeError):
    """A run ended by an error; carries what failed, what the run left behind, and whether to rerun as is."""

    def __init__(self, cause: Failure, outcome: str, streaming: bool = False):
        self.cause, self.outcome, self.streaming = cause, outcome, streaming
        self.retryable = cause.retryable
        what = "the streaming run failed" if streaming else "the run failed"
        super().__init__(f"{what} ({outcome}): {cause.line()} ({cause.verdict()})")

    @classmethod
    def retryable_from_message(cls, message: str) -> bool:
        return message.endswith(f"({RETRYABLE})")

    @property
    def exit_code(self) -> int:
        return self.cause.exit_code


def _clean(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.split(" [while running")[0]


def _causes(exc: BaseException):
    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    else:
        status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(exc, "code", None)  # Google's API errors, urllib's HTTPError
    return status if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599 else None


def _standard_verdict(cls: type, errno_: int | None, status: int | None) -> bool | None:
    """Retryable (True), fatal (False), or None: not a kind of error judged here."""
    if status is not None:
        return status >= 500 or status in (408, 429)
    if issubclass(cls, requests.exceptions.RequestException):  # an OSError too
        return issubclass(cls, _REQUESTS_RETRYABLE)
    if issubclass(cls, (ConnectionError, TimeoutError, http.client.HTTPException)):
        return True
    if issubclass(cls, _PATH_ERRORS) or errno_ in _PATH_ERRNOS:
        return False
    if issubclass(cls, OSError):
        return True
    return None


def retryable(exc: BaseException) -> bool:
    """Whether rerunning as is may succeed after ``exc`` (see the module's doc for standard errors)."""
    for current in _causes(exc):
        if isinstance(current, LakeError):
            return current.retryable
        details = getattr(current, "exception_details", None)
        if isinstance(details, dict) and details and all(isinstance(e, BaseException) for e in details.values()):
            return all(retryable(e) for e in details.values())
        errno_, status = getattr(current, "errno", None), _http_status(current)
        if (type(current) in _WRAPPERS and errno_ is None and status is None
                and (current.__cause__ or current.__context__) is not None):
            continue  # says where it happened; the error it was raised from says what
        verdict = _standard_verdict(type(current), errno_, status)
        return bool(verdict)  # None: not a network or I/O error, so fatal
    return False


def retryable_from_message(error: type, message: str) -> bool:
    """Whether an error known only by its class and message is retryable."""
    if issubclass(error, LakeError):
        return error.retryable_from_message(message)
    errno_ = _ERRNO.search(message)  # its own, or that of the error it names as its cause
    return bool(_standard_verdict(error, int(errno_.group(1)) if errno_ else None, None))


def failure(exc: BaseException) -> Failure:
    """The error a user can act on, typed, and whether rerunning as is may succeed."""
    for current in _causes(exc):
        if isinstance(current, LakeError):
            return Failure(type(current).__name__, _clean(str(current)), type(current), current.retryable)
    recovered = worker_error(exc, STANDARD_ERRORS)
    if recovered is not None:
        error, message = recovered
        return Failure(error.__name__, message, error, retryable_from_message(error, message))
    text = str(exc).strip()
    if text.startswith("Traceback (most recent call last)"):
        # A worker's exception we do not know: its traceback's last line is "Class: message".
        last = [line for line in text.splitlines() if line and not line.startswith((" ", "\t"))][-1]
        name, _, message = last.partition(": ")
        return Failure(name.rsplit(".", 1)[-1], message.split(" [while running")[0])
    return Failure(type(exc).__name__, _clean(text), retryable=retryable(exc))


def failure_from_line(line: str) -> Failure:
    """An error kept as a ``"Class: message"`` line (a many-org run's failed org), typed when the class is known."""
    name, _, message = line.partition(": ")
    known = {cls.__name__: cls for cls in (*STANDARD_ERRORS, *error_classes())}
    error = known.get(name)
    if error is None:
        return Failure(name, message)
    return Failure(name, message, error, retryable_from_message(error, message))


def record_failure(config, failed: RunFailed) -> str | None:
    """Leave ``LAKE/_runs/<run_id>.failed.json`` (what ran, and the error line) for the coverage report.

    Best effort: a lake that cannot be written is why some runs fail; then a warning says so. Returns the path.
    """
    import sys

    from common.durations import rfc3339
    from sinks.lake import records as run_records

    try:
        record = {"source": config.source, "mode": config.mode, "run_kind": config.run_kind,
                  "started_at": config.started.isoformat(), "error": failed.cause.line(), "outcome": failed.outcome,
                  "retryable": failed.retryable}
        okta = config.okta
        if okta is not None:
            if okta.orgs_file:
                record["orgs"] = okta.orgs_file
            else:
                record["okta_org_url"] = okta.org.org_url
            if okta.backfill:
                record.update(since=rfc3339(okta.since), until=rfc3339(okta.until))
            if okta.state:
                record["state"] = okta.state
        return run_records.write_failed_record(config.lake.root, config.run_id, record)
    except Exception as exc:  # noqa: BLE001 - the run's own error line matters more
        print(f"warning: could not record the failed run in {config.lake.root}: {exc.__class__.__name__}",
              file=sys.stderr)
        return None
