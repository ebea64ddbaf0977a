"""What the server saw on ``/api/v1/logs``, for tests that count requests and check how long clients waited."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

# The status recorded for a request answered by closing the connection (the reset fault).
NO_RESPONSE = 0


@dataclass(frozen=True)
class RequestRecord:
    at: float  # time.monotonic() when the request arrived
    path: str  # path and query string, as sent
    status: int  # NO_RESPONSE for a reset connection
    auth_scheme: str | None  # "SSWS", "Bearer", "DPoP" (as the client wrote it), or None
    window: int | None = None  # the rate-limit window it was counted in (its X-Rate-Limit-Reset), None if unsaid


@dataclass(frozen=True)
class Stats:
    """A snapshot: ``requests`` and ``by_status`` count /api/v1/logs calls, ``records`` lists them in order."""

    requests: int
    by_status: dict[int, int]
    records: tuple[RequestRecord, ...]
    token_requests: int


class StatsRecorder:
    def __init__(self):
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._token_requests = 0

    def record(self, entry: RequestRecord) -> None:
        with self._lock:
            self._records.append(entry)

    def count_token_request(self) -> None:
        with self._lock:
            self._token_requests += 1

    def snapshot(self) -> Stats:
        with self._lock:
            records = tuple(self._records)
            token_requests = self._token_requests
        return Stats(len(records), dict(Counter(r.status for r in records)), records, token_requests)
