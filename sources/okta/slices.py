"""A backfill's time slices, and the pages of one slice (Beam-free).

A backfill's ``[since, until)`` is cut into half-open slices read in parallel
(:func:`time_slices`); each slice is read with bounded requests until its last
page (:func:`slice_pages`). A 500 ``E0000009`` (Okta's 30 s query timeout)
splits what is left of the slice in two and reads both halves
(:func:`split_after`); a slice of a second or less that still times out ends
the read with an :class:`~okta_client.errors.OktaApiError`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator

from common.durations import rfc3339
from okta_client.errors import OktaApiError, QueryTimeout
from transforms.envelope import InvalidEvent, published_datetime
from transforms.records import RawBatch

MIN_SLICE = _dt.timedelta(seconds=1)


def time_slices(since: _dt.datetime, until: _dt.datetime, length: _dt.timedelta):
    """Half-open [start, end) slices covering [since, until) exactly once."""
    start = since
    while start < until:
        end = min(start + length, until)
        yield (rfc3339(start), rfc3339(end))
        start = end


def split_after(since: str, until: str, last_published) -> list | None:
    """The unread rest of a slice, in two halves (re-reading the last timestamp seen: dedupe covers it)."""
    start = published_datetime(since)
    if last_published is not None:
        try:
            start = max(start, published_datetime(last_published))
        except InvalidEvent:
            pass
    end = published_datetime(until)
    if end - start <= MIN_SLICE:
        return None
    middle = start + (end - start) / 2
    middle = middle.replace(microsecond=middle.microsecond // 1000 * 1000)
    return [(rfc3339(start), rfc3339(middle)), (rfc3339(middle), rfc3339(end))]


def slice_pages(client, settings, time_slice: tuple[str, str], on_page: Callable | None = None,
                on_split: Callable | None = None) -> Iterator[RawBatch]:
    """The pages of one slice that hold events, as ``RawBatch`` elements of the org (``settings.org``).

    ``on_page(page)`` is called for every page read (empty ones too), ``on_split()`` when a timeout split the
    rest of a slice. A caller may stop early by leaving the loop.
    """
    pending = [tuple(time_slice)]
    while pending:
        since, until = pending.pop(0)
        last_published = None
        try:
            for number, page in enumerate(client.bounded_pages(
                    since, until, filter=settings.filter or None, limit=settings.page_limit)):
                if on_page is not None:
                    on_page(page)
                if page.events:
                    last_published = page.events[-1].get("published")
                    yield RawBatch(page.url, "page", [number + 1], [page.body], org=settings.org)
        except QueryTimeout:
            halves = split_after(since, until, last_published)
            if halves is None:
                raise OktaApiError("GET", f"{settings.org_url}/api/v1/logs", 500, "E0000009",
                                   f"Okta timed out even on the slice {since} .. {until}") from None
            if on_split is not None:
                on_split()
            pending[:0] = halves
