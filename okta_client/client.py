"""``SystemLogClient``: pages of ``/api/v1/logs``, the way Okta says to read them.

- Pages come from ``Link rel="next"`` URLs only; ``after`` is never built by
  hand, and a next link to another origin is refused.
- Bounded reads (``since`` + ``until``) end at the page without a next link;
  polling reads (no ``until``) end at the first short page (fewer events than
  the ``limit`` asked: caught up), and that page's next link is the cursor to
  resume from. Okta's polling chain always has a next link, so asking it for
  an empty page only to learn "caught up" would spend a request for nothing.
- Faults: connection errors, timeouts, cut-off bodies and 5xx are retried
  with capped exponential backoff and full jitter; a 429 waits for the rate
  window (see :mod:`okta_client.ratelimit`); a 500 ``E0000009`` on a bounded
  read raises :class:`QueryTimeout` so the caller can split its time range;
  any other 4xx is a final :class:`OktaApiError` naming the request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from okta_client.auth import Auth
from okta_client.errors import IncompleteBody, OktaApiError, QueryTimeout, ResponseTooLarge, Stopped
from okta_client.pages import read_page
from okta_client.ratelimit import RateGovernor
from okta_client.urls import check_next_link, normalise_org_url

LOG = logging.getLogger("okta_client")
LOGS_PATH = "/api/v1/logs"
DEFAULT_LIMIT = 100  # Okta's page size when a request names no limit
MAX_LIMIT = 1000  # and the most it serves per page
USER_AGENT = "okta-personal-lake/0.1 (+https://github.com/; python-requests)"
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError)


@dataclass
class Page:
    """One answer of ``/api/v1/logs``."""

    url: str
    body: bytes
    events: list
    next_url: str | None
    headers: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.events)


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests sent (every attempt)
    pages: int = 0
    events: int = 0
    retries: int = 0  # transient failures retried (network, cut-off bodies, 5xx)
    throttled: int = 0  # 429 answers waited out

    def count(self, event: str) -> None:
        field = {"request": "requests", "page": "pages", "retry": "retries", "throttled": "throttled"}[event]
        setattr(self, field, getattr(self, field) + 1)


#: What a client reports to ``on_event`` as it happens: a request sent, a page read, a retry, a 429 waited out.
EVENTS = ("request", "page", "retry", "throttled")


class SystemLogClient:
    """Read the System Log of one Okta org."""

    def __init__(self, org_url: str, auth: Auth, *, governor: RateGovernor | None = None,
                 rate_share: float = 1.0, timeout=(10.0, 60.0), max_retries: int = 8,
                 max_throttled: int = 50, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 max_response_bytes: int = 64 * 1024 * 1024, session: requests.Session | None = None,
                 sleep=time.sleep, on_event=None, stop=None):
        """``on_event(name)`` is called as each of :data:`EVENTS` happens (counters that must move during an
        outage, not after it); ``stop`` (a ``threading.Event``) ends every wait at once with
        :class:`~okta_client.errors.Stopped` when set (a backoff, a rate-limit window)."""
        self.org_url = normalise_org_url(org_url)
        self.auth = auth
        self.governor = governor or RateGovernor(rate_share)
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_throttled = max_throttled
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_response_bytes = max_response_bytes
        self.sleep = sleep
        self.on_event = on_event
        self.stop = stop
        self.stats = ClientStats()
        self.session = session or self._session()

    @staticmethod
    def _session() -> requests.Session:
        session = requests.Session()
        # urllib3 retries only what never reached Okta (connect failures); everything
        # else is decided below, where the rate-limit headers and Okta's codes are known.
        retry = Retry(total=None, connect=3, read=0, redirect=0, status=0, other=0,
                      backoff_factor=0.5, backoff_jitter=0.5, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=16)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def __repr__(self) -> str:
        return f"SystemLogClient({self.org_url!r}, auth={self.auth!r})"

    # -- URLs ---------------------------------------------------------------
    def first_url(self, *, since: str | None = None, until: str | None = None, filter: str | None = None,
                  limit: int = 1000, sort_order: str | None = None) -> str:
        params = {}
        if since:
            params["since"] = since
        if until:
            params["until"] = until
        if filter:
            params["filter"] = filter
        params["limit"] = str(limit)
        if sort_order:
            params["sortOrder"] = sort_order
        return f"{self.org_url}{LOGS_PATH}?{urlencode(params)}"

    # -- reading --------------------------------------------------------------
    def bounded_pages(self, since: str, until: str, *, filter: str | None = None,
                      limit: int = 1000) -> Iterator[Page]:
        """Every page of ``since <= published < until``, in published order."""
        url: str | None = self.first_url(since=since, until=until, filter=filter, limit=limit)
        while url:
            page = self.get_page(url, bounded=True)
            yield page
            url = page.next_url

    def polling_pages(self, url: str) -> Iterator[Page]:
        """Follow a polling chain from ``url`` while its pages are full; stop after the first short page.

        A full page (as many events as the ``limit`` asked) means more may be waiting; a short one (an
        empty one included) means caught up. The last page yielded is short; its ``next_url`` is where to
        resume, and it is not asked for now.
        """
        while True:
            page = self.get_page(url, bounded=False)
            yield page
            if len(page.events) < page_limit(page.url):
                return
            if not page.next_url:
                raise OktaApiError("GET", page.url, 200, None,
                                   "a polling page came without a next link (is `until` set?)")
            url = page.next_url

    def get_page(self, url: str, *, bounded: bool) -> Page:
        """One page, with retries, pacing and Okta's error handling."""
        check_next_link(url, self.org_url)
        failures = throttled = 0
        reauthenticated = False
        while True:
            self.governor.acquire(self.stop)
            status = headers = None
            self._event("request")
            try:
                auth_headers = self.auth.headers(self.session, "GET", url)
                response = self.session.get(
                    url, headers={**auth_headers, "Accept": "application/json", "User-Agent": USER_AGENT},
                    timeout=self.timeout, stream=True, allow_redirects=False)
                status, headers = response.status_code, response.headers
                body = self._read(response, url)
            except _TRANSIENT as exc:
                self.governor.release(status, headers)
                failures += 1
                self._retry_or_raise(url, failures, f"{exc.__class__.__name__}")
                continue
            except BaseException:
                self.governor.release(status, headers)
                raise
            self.governor.release(status, headers)
            if self.auth.on_response(response):
                continue
            if status == 200:
                events, cut = read_page(body)  # a whole page with a bad event in it is a page
                if cut is not None:
                    failures += 1  # a body cut short with a lying Content-Length
                    if failures > self.max_retries:
                        raise IncompleteBody("GET", url, status, None,
                                             f"gave up after {failures} attempts; last: {cut}")
                    self._retry_or_raise(url, failures, cut)
                    continue
                if not isinstance(events, list):
                    raise OktaApiError("GET", url, status, None, "expected a JSON array of LogEvents")
                next_url = response.links.get("next", {}).get("url")
                if next_url:
                    check_next_link(next_url, self.org_url)
                self._event("page")
                self.stats.events += len(events)
                LOG.debug("GET %s -> 200, %d events", url, len(events))
                return Page(url, body, events, next_url, dict(headers))
            code, summary = _okta_error(body)
            if status == 429:
                throttled += 1
                self._event("throttled")
                if throttled > self.max_throttled:
                    raise OktaApiError("GET", url, status, code, f"still rate limited after {throttled} waits")
                LOG.info("GET %s -> 429 %s; waiting for the rate-limit window", url, code or "")
                continue  # the governor waits for the reset
            if status == 401 and not reauthenticated:
                reauthenticated = True
                self.auth.invalidate()
                continue
            if status == 500 and code == "E0000009" and bounded:
                raise QueryTimeout("GET", url, status, code, summary or "query timed out")
            if status >= 500 or status == 408:
                failures += 1
                self._retry_or_raise(url, failures, f"HTTP {status} {code or ''}".strip(), status, code)
                continue
            raise OktaApiError("GET", url, status, code, summary or f"unexpected HTTP {status}")

    def _read(self, response: requests.Response, url: str) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            response.close()
            raise ResponseTooLarge("GET", url, response.status_code, None,
                                   f"the response declares {int(declared):,} bytes, over the "
                                   f"{self.max_response_bytes:,}-byte limit")
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > self.max_response_bytes:
                response.close()
                raise ResponseTooLarge("GET", url, response.status_code, None,
                                       f"the response passed the {self.max_response_bytes:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _retry_or_raise(self, url: str, failures: int, what: str, status: int | None = None,
                        code: str | None = None) -> None:
        if failures > self.max_retries:
            raise OktaApiError("GET", url, status, code, f"gave up after {failures} attempts; last: {what}")
        self._event("retry")
        delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** failures))
        LOG.info("GET %s failed (%s); retry %d in %.1f s", url, what, failures, delay)
        self._wait(delay)

    def _event(self, name: str) -> None:
        self.stats.count(name)
        if self.on_event is not None:
            self.on_event(name)

    def _wait(self, seconds: float) -> None:
        """Sleep, unless asked to stop first (then :class:`Stopped`)."""
        if self.stop is None:
            self.sleep(seconds)
        elif self.stop.wait(seconds):
            raise Stopped("asked to stop while waiting to retry")


def page_limit(url: str) -> int:
    """The page size a request asked for (its ``limit``; Okta's default when it names none)."""
    values = parse_qs(urlsplit(url).query).get("limit")
    try:
        return min(max(1, int(values[0])), MAX_LIMIT) if values else DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT


def _okta_error(body: bytes) -> tuple[str | None, str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        return data.get("errorCode") or data.get("error"), str(
            data.get("errorSummary") or data.get("error_description") or "")
    return None, ""
