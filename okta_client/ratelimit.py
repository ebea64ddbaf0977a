"""Pacing by Okta's rate-limit headers, shared by every thread that talks to one org.

Okta counts ``/api/v1/logs`` calls per org per minute and reports, on every
response, ``X-Rate-Limit-Limit``, ``-Remaining`` and ``-Reset`` (epoch
seconds). The governor:

- sends one probe request while it knows nothing (at start, and after each
  window resets), then spreads the remaining calls evenly over what is left
  of the window, so several workers converge instead of bursting;
- keeps ``(1 - share) x Limit`` of every window for other integrations: it
  never sends while ``Remaining`` is at or below that reserve. Because
  ``Remaining`` is the org's own counter, this holds for any number of
  processes, not just the threads of this one;
- on a 429 waits for the window's reset (server time, from ``Date``) plus a
  second and some jitter, like Okta's SDK; a concurrency-limit 429
  (``Limit: 0``) gets a short exponential backoff instead.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from dataclasses import dataclass


@dataclass
class GovernorStats:
    requests: int = 0
    throttled: int = 0  # 429 answers received
    concurrency_throttled: int = 0  # 429 with Limit 0
    seconds_waited: float = 0.0  # time spent waiting for budget (pacing, resets, backoff)


class RateGovernor:
    """Thread-safe gate: ``acquire()`` before a request, ``release(response)`` after."""

    RESET_MARGIN = 1.0  # seconds past Reset before the next window is assumed open

    def __init__(self, share: float = 1.0, *, clock=time.time, jitter: float = 0.5, pace: bool = True):
        if not 0 < share <= 1:
            raise ValueError(f"rate share must be in (0, 1], got {share}")
        self.share = share
        self.pace = pace
        self._clock = clock
        self._jitter = jitter
        self._cond = threading.Condition()
        self._limit: int | None = None
        self._remaining: int | None = None
        self._reset_at: float | None = None  # local clock seconds
        self._in_flight = 0
        self._last_sent = 0.0
        self._backoff_until = 0.0
        self._concurrency_strikes = 0
        self.stats = GovernorStats()

    @property
    def limit(self) -> int | None:
        return self._limit

    def reserve(self) -> int:
        """Calls per window left to other integrations."""
        if self._limit is None:
            return 0
        return math.ceil(self._limit * (1 - self.share) - 1e-9)

    def _delay(self, now: float) -> float:
        """Seconds to wait before the next request may go (0 = now). Caller holds the lock."""
        if now < self._backoff_until:
            return self._backoff_until - now
        if self._reset_at is not None and now >= self._reset_at:
            self._remaining = None  # a new window: learn it from one probe
            self._reset_at = None
        if self._remaining is None:
            return 0.0 if self._in_flight == 0 else 0.05
        usable = self._remaining - self.reserve()
        if usable <= 0:
            if self._reset_at is None:
                return 0.05
            return max(self._reset_at - now, 0.01)
        if not self.pace or self._reset_at is None:
            return 0.0
        interval = max(self._reset_at - now, 0.0) / usable
        return max(self._last_sent + interval - now, 0.0)

    def acquire(self, stop=None) -> None:
        """Wait until a request may go; ``stop`` (a ``threading.Event``) set meanwhile raises ``Stopped``."""
        from okta_client.errors import Stopped

        started = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    break
                if stop is not None and stop.is_set():
                    raise Stopped("asked to stop while waiting for the rate limit")
                # With a stop event, wake at least every quarter second to see it.
                self._cond.wait(timeout=delay if stop is None else min(delay, 0.25))
            self._in_flight += 1
            if self._remaining is not None:
                self._remaining -= 1  # counted now, confirmed (or lowered) by the answer
            self._last_sent = now
            self.stats.requests += 1
            self.stats.seconds_waited += max(now - started, 0.0)

    def release(self, status: int | None, headers) -> None:
        """Learn from a response (``headers`` may be None after a network error)."""
        with self._cond:
            self._in_flight = max(self._in_flight - 1, 0)
            if headers is not None:
                self._observe(status, headers)
            self._cond.notify_all()

    def _observe(self, status: int | None, headers) -> None:
        limit, remaining, reset = (_int(headers.get(h)) for h in
                                   ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"))
        now = self._clock()
        if status == 429 and limit == 0:
            self.stats.throttled += 1
            self.stats.concurrency_throttled += 1
            self._concurrency_strikes += 1
            pause = min(0.25 * 2 ** self._concurrency_strikes, 10.0)
            self._backoff_until = now + pause * (0.5 + random.random() / 2)
            return
        self._concurrency_strikes = 0
        if limit is None or remaining is None or reset is None:
            return
        skew = 0.0
        server_now = _http_date(headers.get("Date"))
        if server_now is not None:
            skew = server_now - now
        reset_local = reset - skew + self.RESET_MARGIN + random.random() * self._jitter
        if self._reset_at is not None and reset_local < self._reset_at - 2 * self.RESET_MARGIN:
            return  # a late answer from an earlier window
        self._limit = limit
        if self._reset_at is not None and abs(reset_local - self._reset_at) < 2 * self.RESET_MARGIN:
            # Same window: answers arrive out of order under concurrency; keep the lowest.
            remaining = min(remaining, self._remaining if self._remaining is not None else remaining)
            reset_local = self._reset_at
        if status == 429:
            self.stats.throttled += 1
            remaining = 0
        self._remaining = remaining
        self._reset_at = reset_local


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _http_date(value) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
