"""Okta-style rate limiting: a request budget per aligned time window, and a concurrency cap.

The window works like Okta's per-minute buckets: it resets at the next
multiple of ``window_seconds`` in epoch seconds, whatever the first request's
time. Every request counts, refused ones included. Over the concurrency cap,
Okta answers 429 with ``X-Rate-Limit-Limit: 0`` and ``X-Rate-Limit-Remaining: 0``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

# What the headers announce when the emulator is configured without a limit.
UNLIMITED = 1_000_000


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset: int

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("X-Rate-Limit-Limit", str(self.limit)), ("X-Rate-Limit-Remaining", str(self.remaining)),
                ("X-Rate-Limit-Reset", str(self.reset)))


class RateLimiter:
    def __init__(self, limit: int, window_seconds: int):
        self.limit = limit or UNLIMITED
        self.window = window_seconds
        self._lock = threading.Lock()
        self._window_end = 0
        self._used = 0

    def take(self) -> Verdict:
        with self._lock:
            now = time.time()
            if now >= self._window_end:
                self._window_end = (math.floor(now / self.window) + 1) * self.window
                self._used = 0
            allowed = self._used < self.limit
            self._used += 1
            return Verdict(allowed, self.limit, max(self.limit - self._used, 0), self._window_end)


class ConcurrencyGate:
    """Counts requests in flight; ``enter()`` says whether this one fits under the cap (0 = no cap)."""

    def __init__(self, cap: int):
        self.cap = cap
        self._lock = threading.Lock()
        self.in_flight = 0

    def enter(self) -> bool:
        with self._lock:
            self.in_flight += 1
            return not self.cap or self.in_flight <= self.cap

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
