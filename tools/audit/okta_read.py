"""What Okta holds: the selected events of each audited hour of one org, read with bounded requests.

One bounded request per hour (``since`` = the hour, ``until`` = the next one, the org's SCIM filter pushed
down, ``limit`` = ``--okta_page_limit``), following ``next`` links when the hour holds more than a page;
Okta's query timeout splits the hour like a backfill's slice (:func:`sources.okta.slices.slice_pages`).
The client is the org's, sharing the process's rate governor of that org and rate share
(:func:`sources.okta.connect.build_client`), so the audit stays within ``--okta_rate_share`` like a run.

The selection is checked again here (a filter that is not pushed down returns every type). An event whose
``uuid`` or ``eventType`` cannot be read is counted, not compared. The first hour Okta does not answer
(after the client's retries) ends the org's reading: its remaining hours are reported failed with that
error, and the other orgs go on.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field

from common.durations import rfc3339
from tools.audit.hours import HOUR


@dataclass
class OktaHour:
    """The selected events Okta returned for one hour: uuid -> event type; and what could not be read."""

    uuids: dict[str, str] = field(default_factory=dict)
    unreadable: int = 0


@dataclass
class OktaAnswers:
    """One org's answers: per hour, and how the reading went."""

    hours: dict[_dt.datetime, OktaHour] = field(default_factory=dict)
    failed: list[_dt.datetime] = field(default_factory=list)  # hours not read: the error below
    error: str | None = None
    retryable: bool = False
    requests: int = 0  # HTTP requests sent to /api/v1/logs (every attempt)
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "pages": self.pages, "retries": self.retries,
                "throttled": self.throttled, "seconds": round(self.seconds, 3)}


def add_page(found: OktaHour, events, selected) -> None:
    """Count one page's events into ``found`` (the selected ones by uuid; unreadable ones apart)."""
    for event in events:
        uuid = event.get("uuid") if isinstance(event, dict) else None
        event_type = event.get("eventType") if isinstance(event, dict) else None
        if not isinstance(uuid, str) or not uuid.strip() or not isinstance(event_type, str):
            found.unreadable += 1
        elif selected(event_type):
            found.uuids[uuid] = event_type


def read_hour(client, settings, selected, hour: _dt.datetime) -> OktaHour:
    """Every selected event Okta holds with ``hour <= published < hour + 1h``."""
    from sources.okta.slices import slice_pages

    found = OktaHour()
    for _ in slice_pages(client, settings, (rfc3339(hour), rfc3339(hour + HOUR)),
                         on_page=lambda page: add_page(found, page.events, selected)):
        pass
    return found


def read_org(org, hours: list[_dt.datetime], client=None) -> OktaAnswers:
    """Okta's answers for ``hours`` of ``org`` (an :class:`~sources.okta.orgs.OrgSpec`), hour by hour, in order.

    ``client``: a client to use instead of the org's own (tests); by default :func:`build_client`'s.
    """
    from sources.okta.connect import build_client
    from transforms.selection import EventTypeSelection

    answers = OktaAnswers()
    started = time.monotonic()
    selected = EventTypeSelection.parse(org.event_types)
    pending = list(hours)
    try:
        client = client or build_client(org.settings)
        while pending:
            answers.hours[pending[0]] = read_hour(client, org.settings, selected, pending[0])
            pending.pop(0)
    except Exception as exc:  # noqa: BLE001 - one org's failure is reported for that org; the others go on
        answers.failed = pending
        answers.error = error_line(exc)
        answers.retryable = bool(getattr(exc, "retryable", False))
    finally:
        answers.seconds = time.monotonic() - started
        if client is not None:
            stats = client.stats
            answers.requests, answers.pages = stats.requests, stats.pages
            answers.retries, answers.throttled = stats.retries, stats.throttled
    return answers


def error_line(exc: BaseException) -> str:
    """The error as one line (the client's errors name the request, never a credential)."""
    text = str(exc).splitlines()[0][:400] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
