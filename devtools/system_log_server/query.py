"""``GET /api/v1/logs`` semantics: validate the query parameters, then pick the page of events.

Two kinds of request, as Okta defines them:

* bounded (``until`` given, or ``sortOrder=DESCENDING`` which then means
  ``until=now``): events with ``since <= published < until`` in
  (published, sequence) order, ascending or descending; finite, so the last
  page has no next cursor;
* polling (no ``until``, ascending): events in persistence order from
  ``since`` on; endless, so there is always a next cursor, even after an
  empty page. An event persisted late (old ``published``) shows up here.

Either way only events already persisted are visible, and events published
more than 90 days ago never are.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from urllib.parse import parse_qsl

from devtools.system_log_server import keywords as keyword_search
from devtools.system_log_server.cursor import Cursor, CursorCodec, CursorError
from devtools.system_log_server.errors import OktaError, validation_error
from devtools.system_log_server.scim import Filter, FilterError, parse_filter
from devtools.system_log_server.store import PERSISTED_KEY, PUBLISHED_KEY, EventStore, StoredEvent, event_document
from devtools.system_log_server.timestamps import DAY_US, now_us, parse_us

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
DEFAULT_LOOKBACK_US = 7 * DAY_US
RETENTION_US = 90 * DAY_US
MAX_SINCE_AGE_US = 180 * DAY_US
_SORT_ORDERS = ("ASCENDING", "DESCENDING")


@dataclass(frozen=True)
class LogQuery:
    """A validated request. ``link_params`` is the query minus ``after``, in the client's order."""

    link_params: tuple[tuple[str, str], ...]
    since_us: int
    until_us: int | None
    limit: int
    descending: bool
    filter: Filter | None
    keywords: tuple[str, ...]
    after: Cursor | None

    @property
    def polling(self) -> bool:
        return self.until_us is None

    @property
    def cursor_mode(self) -> str:
        return "poll" if self.polling else ("desc" if self.descending else "asc")


@dataclass(frozen=True)
class Page:
    body: bytes  # the JSON array
    next_cursor: Cursor | None


def parse_query(query_string: str, codec: CursorCodec, now: int) -> LogQuery:
    """Validate the parameters like Okta does; raises OktaError (400) for the first problem found."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    # Okta ignores blank parameters (its own self links carry "q="); the first of repeated ones wins.
    params: dict[str, str] = {}
    for name, value in pairs:
        if value != "":
            params.setdefault(name, value)
    since = _timestamp(params, "since")
    until = _timestamp(params, "until")
    limit = _limit(params.get("limit"))
    order = params.get("sortOrder", "ASCENDING")
    if order not in _SORT_ORDERS:
        raise validation_error("sortOrder", "must be one of ASCENDING, DESCENDING.")
    descending = order == "DESCENDING"
    try:
        search = keyword_search.parse_keywords(params.get("q", ""))
    except keyword_search.KeywordError as error:
        raise validation_error("q", str(error)) from None
    try:
        expression = parse_filter(params["filter"]) if "filter" in params else None
    except FilterError as error:
        raise OktaError(400, "E0000031", causes=(str(error),)) from None
    after = None
    if "after" in params:
        try:
            after = codec.decode(params["after"])
        except CursorError:
            raise validation_error("after", "The after cursor is not valid.") from None
    # The 180-day rule is checked on first requests only, so a long-lived next-link chain keeps working.
    if since is not None and after is None and since < now - MAX_SINCE_AGE_US:
        raise OktaError(400, "E0000053", "The since parameter is over 180 days prior to the current day.")
    if until is None and descending:
        until = now
    query = LogQuery(
        link_params=tuple((name, value) for name, value in pairs if name != "after"),
        since_us=now - DEFAULT_LOOKBACK_US if since is None else since,
        until_us=until, limit=limit, descending=descending,
        filter=expression, keywords=search, after=after,
    )
    if after is not None and after.mode != query.cursor_mode:
        raise validation_error("after", "The after cursor does not belong to this kind of request.")
    return query


def _timestamp(params: dict[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return parse_us(params[name])
    except ValueError:
        raise validation_error(name, "The date format in your query is not recognized. Please enter dates "
                                     "using ISO8601 string format.", "must be a valid date-time or empty.") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit():
        raise validation_error("limit", "must be a non-negative integer.")
    return min(int(text), MAX_LIMIT)


def select_page(store: EventStore, query: LogQuery) -> Page:
    test = _matcher(query)
    with store.lock:
        # "now" is read under the lock: see EventStore.add.
        now = now_us()
        if query.polling:
            return _polling_page(store, query, now, test)
        start = query.after.key if query.after else None
        matches = list(islice(_bounded_scan(store, query, now, test, start), query.limit + 1))
    picked = matches[:query.limit]
    next_cursor = None
    if len(matches) > query.limit:
        position = picked[-1].published_key if picked else _bounded_start(query, now, start)
        next_cursor = Cursor(query.cursor_mode, position)
    return Page(_join(picked), next_cursor)


def exceeds(store: EventStore, query: LogQuery, threshold: int) -> bool:
    """Whether the whole bounded range holds more than ``threshold`` matching events."""
    test = _matcher(query)
    with store.lock:
        scan = _bounded_scan(store, query, now_us(), test, None)
        return sum(1 for _ in islice(scan, threshold + 1)) > threshold


def _bounded_start(query: LogQuery, now: int, after: tuple[int, int] | None) -> tuple[int, int]:
    """The exclusive position a bounded scan starts from (sequence numbers are >= 0)."""
    if query.descending:
        edge = (query.until_us, -1)
        return edge if after is None else min(after, edge)
    edge = (max(query.since_us, now - RETENTION_US), -1)
    return edge if after is None else max(after, edge)


def _bounded_scan(store: EventStore, query: LogQuery, now: int, test: Callable[[StoredEvent], bool],
                  after: tuple[int, int] | None) -> Iterator[StoredEvent]:
    events = store.by_published
    start = _bounded_start(query, now, after)
    low = max(query.since_us, now - RETENTION_US)
    if query.descending:
        for index in range(bisect.bisect_left(events, start, key=PUBLISHED_KEY) - 1, -1, -1):
            event = events[index]
            if event.published_us < low:
                return
            if event.persisted_us <= now and test(event):
                yield event
    else:
        for event in islice(events, bisect.bisect_right(events, start, key=PUBLISHED_KEY), None):
            if event.published_us >= query.until_us:
                return
            if event.persisted_us <= now and test(event):
                yield event


def _polling_page(store: EventStore, query: LogQuery, now: int, test: Callable[[StoredEvent], bool]) -> Page:
    events = store.by_persisted
    position = query.after.key if query.after else (query.since_us, -1)
    cutoff = now - RETENTION_US
    picked: list[StoredEvent] = []
    for event in islice(events, bisect.bisect_right(events, position, key=PERSISTED_KEY), None):
        if event.persisted_us > now or len(picked) == query.limit:
            break
        # The cursor moves past everything examined, matching or not, so the next poll does not rescan it.
        position = event.persisted_key
        if event.published_us >= cutoff and test(event):
            picked.append(event)
    return Page(_join(picked), Cursor("poll", position))


def _matcher(query: LogQuery) -> Callable[[StoredEvent], bool]:
    checks: list[Callable[[StoredEvent], bool]] = []
    expression, words = query.filter, query.keywords
    if expression is not None:
        if expression.paths <= {("eventType",)}:
            # The common filter (eventType sw "personal.") needs no JSON parsing.
            checks.append(lambda event: expression.matches({"eventType": event.event_type}))
        else:
            checks.append(lambda event: expression.matches(event_document(event.data)))
    if words:
        checks.append(lambda event: keyword_search.matches(words, event.data))
    return lambda event: all(check(event) for check in checks)


def _join(events: list[StoredEvent]) -> bytes:
    return b"[" + b",".join(event.data for event in events) + b"]"
