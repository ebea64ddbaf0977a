"""``GET /api/v1/logs`` end to end: rate limit, concurrency cap, faults, auth, query, page, Link headers.

The order mirrors where things happen in front of and inside Okta: the
request is counted against the rate limit first (every request counts,
faulted and refused ones too), then the concurrency cap, then the network
faults of the path to Okta, then authentication, then the query itself.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

from devtools.system_log_server.auth import Authenticator
from devtools.system_log_server.config import EmulatorConfig
from devtools.system_log_server.cursor import CursorCodec
from devtools.system_log_server.errors import QUERY_TIMEOUT, OktaError
from devtools.system_log_server.faults import Fault, FaultInjector
from devtools.system_log_server.query import exceeds, parse_query, select_page
from devtools.system_log_server.ratelimit import ConcurrencyGate, RateLimiter
from devtools.system_log_server.store import EventStore
from devtools.system_log_server.timestamps import now_us

LOGS_PATH = "/api/v1/logs"
_GATEWAY_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    fault: Fault | None = None  # RESET and TRUNCATE are carried out by the HTTP layer


class LogsEndpoint:
    def __init__(self, config: EmulatorConfig, base_url: str, store: EventStore, auth: Authenticator):
        self._config = config
        self._base_url = base_url
        self._store = store
        self._auth = auth
        self._codec = CursorCodec()
        self._limiter = RateLimiter(config.rate_limit, config.rate_window_seconds)
        self._gate = ConcurrencyGate(config.concurrency_limit)
        self._faults = FaultInjector(config.fault_seed, reset=config.fault_reset, truncate=config.fault_truncate,
                                     gateway=config.fault_5xx, timeout=config.fault_timeout, slow=config.fault_slow)
        self.outage_status: int | None = None  # while set, every request gets this 5xx (SystemLogServer.outage)

    def handle(self, query_string: str, authorization: str | None, dpop: str | None) -> Response:
        verdict = self._limiter.take()
        rate_headers = verdict.headers()
        fits = self._gate.enter()
        try:
            if not verdict.allowed:
                return _error(OktaError(429, "E0000047"), rate_headers)
            if not fits:
                return _error(OktaError(429, "E0000047"), (("X-Rate-Limit-Limit", "0"),
                                                           ("X-Rate-Limit-Remaining", "0"),
                                                           ("X-Rate-Limit-Reset", str(verdict.reset))))
            if self.outage_status is not None:
                return _gateway(self.outage_status, rate_headers)
            plan = self._faults.draw()
            if plan.slow:
                time.sleep(self._config.slow_seconds)
            if plan.fault is Fault.RESET:
                return Response(0, (), b"", Fault.RESET)
            if plan.fault is Fault.GATEWAY:
                return _gateway(plan.gateway_status, rate_headers)
            response = self._answer(query_string, authorization, dpop, plan.fault is Fault.TIMEOUT, rate_headers)
            return Response(response.status, response.headers, response.body,
                            Fault.TRUNCATE if plan.fault is Fault.TRUNCATE else None)
        finally:
            self._gate.leave()

    def _answer(self, query_string: str, authorization: str | None, dpop: str | None, timeout: bool,
                rate_headers: tuple[tuple[str, str], ...]) -> Response:
        try:
            self._auth.check(authorization, dpop, "GET", self._base_url + LOGS_PATH)
            if timeout:
                raise OktaError(500, "E0000009", summary=QUERY_TIMEOUT)
            query = parse_query(query_string, self._codec, now_us())
            threshold = self._config.timeout_events
            if threshold and not query.polling and query.after is None and exceeds(self._store, query, threshold):
                raise OktaError(500, "E0000009", summary=QUERY_TIMEOUT)
            page = select_page(self._store, query)
        except OktaError as error:
            return _error(error, rate_headers)
        links = [("Link", self._link(parse_qsl(query_string, keep_blank_values=True), "self"))]
        if page.next_cursor is not None:
            after = self._codec.encode(page.next_cursor)
            links.append(("Link", self._link([*query.link_params, ("after", after)], "next")))
        return Response(200, (("Content-Type", "application/json"), *links, *rate_headers, *_common_headers()),
                        page.body)

    def _link(self, params: list[tuple[str, str]], rel: str) -> str:
        query = urlencode(params, quote_via=quote)
        return f'<{self._base_url}{LOGS_PATH}{"?" + query if query else ""}>; rel="{rel}"'


def _error(error: OktaError, rate_headers: tuple[tuple[str, str], ...]) -> Response:
    return Response(error.status, (("Content-Type", "application/json"), *rate_headers, *error.headers,
                                   *_common_headers()), error.body())


def _common_headers() -> tuple[tuple[str, str], ...]:
    return (("X-Okta-Request-Id", secrets.token_urlsafe(18)), ("Cache-Control", "no-cache, no-store"))


def _gateway(status: int, rate_headers) -> Response:
    """A 502/503/504 from "a proxy" in front of Okta: an HTML body, not Okta's JSON."""
    reason = f"{status} {_GATEWAY_REASONS[status]}"
    body = f"<html><head><title>{reason}</title></head><body><h1>{reason}</h1></body></html>\n"
    return Response(status, (("Content-Type", "text/html"), *rate_headers), body.encode())
