"""Why a run failed, as a typed value that reaches the user's one line (never a Beam traceback).

:func:`failure` finds the project's own error under Beam's wrapping: first
by type along the exception's causes; when a local runner handed back only
a worker's traceback text, by the error's qualified class name
(:func:`pipeline.runner.worker_error`); otherwise the exception's
own class and the last line of what it says. :func:`record_failure` leaves
that line in the lake for the coverage report.
"""

from __future__ import annotations

from dataclasses import dataclass

from okta_client.errors import ConfigurationError, OktaApiError, QueryTimeout, ResponseTooLarge, UnsafeUrl
from pipeline.runner import worker_error
from sources.files.pool import DecodeProcessFailed
from transforms.envelope import InvalidEvent
from transforms.flatten import PartitionNameError, WrongType
from transforms.jsonio import NotJson

# Every error class the code raises (the record-level ones become dead letters and should never end a run).
PROJECT_ERRORS: tuple[type[BaseException], ...] = (
    UnsafeUrl, ConfigurationError, QueryTimeout, ResponseTooLarge, OktaApiError,
    InvalidEvent, WrongType, PartitionNameError, NotJson, DecodeProcessFailed,
)
# Standard errors the code raises on purpose (files and paths), recognised by name too.
STANDARD_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, PermissionError, OSError, ValueError)


@dataclass(frozen=True)
class Failure:
    kind: str  # the error's class name
    message: str
    error: type[BaseException] | None = None  # the class, when it is one the code raises

    def line(self) -> str:
        return f"{self.kind}: {self.message}"[:500]


class RunFailed(Exception):
    """A run ended by an error; carries what failed and what the run left behind."""

    def __init__(self, cause: Failure, outcome: str, streaming: bool = False):
        self.cause, self.outcome, self.streaming = cause, outcome, streaming
        what = "the streaming run failed" if streaming else "the run failed"
        super().__init__(f"{what} ({outcome}): {cause.line()}")


def _clean(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.split(" [while running")[0]


def failure(exc: BaseException) -> Failure:
    """The error a user can act on, typed."""
    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PROJECT_ERRORS):
            return Failure(type(current).__name__, _clean(str(current)), type(current))
        current = current.__cause__ or current.__context__
    recovered = worker_error(exc, PROJECT_ERRORS + STANDARD_ERRORS)
    if recovered is not None:
        error, message = recovered
        return Failure(error.__name__, message, error)
    text = str(exc).strip()
    if text.startswith("Traceback (most recent call last)"):
        # A worker's exception we do not know: its traceback's last line is "Class: message".
        last = [line for line in text.splitlines() if line and not line.startswith((" ", "\t"))][-1]
        name, _, message = last.partition(": ")
        return Failure(name.rsplit(".", 1)[-1], message.split(" [while running")[0])
    return Failure(type(exc).__name__, _clean(text))


def record_failure(config, failed: RunFailed) -> str | None:
    """Leave ``LAKE/_runs/<run_id>.failed.json`` (what ran, and the error line) for the coverage report.

    Best effort: a lake that cannot be written is why some runs fail; then a warning says so. Returns the path.
    """
    import sys

    from common.durations import rfc3339
    from sinks.lake import records as run_records

    try:
        record = {"source": config.source, "mode": config.mode, "started_at": config.started.isoformat(),
                  "error": failed.cause.line(), "outcome": failed.outcome}
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
