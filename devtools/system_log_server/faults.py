"""Random faults for ``/api/v1/logs``, reproducible with a seed: what a flaky network and Okta do.

Per request, at most one of reset / truncate / 5xx / timeout happens (one
draw against their summed probabilities), and independently the answer may
be slow.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from enum import Enum


class Fault(Enum):
    RESET = "reset"        # close the TCP connection with an RST, no response at all
    TRUNCATE = "truncate"  # full Content-Length announced, part of the body sent, connection closed
    GATEWAY = "5xx"        # a 502/503/504 from "a proxy", not an Okta JSON body
    TIMEOUT = "timeout"    # Okta's 500 E0000009 for a query that ran too long


@dataclass(frozen=True)
class FaultPlan:
    fault: Fault | None
    slow: bool
    gateway_status: int


class FaultInjector:
    def __init__(self, seed: int | None, reset: float, truncate: float, gateway: float, timeout: float,
                 slow: float):
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._odds = ((Fault.RESET, reset), (Fault.TRUNCATE, truncate), (Fault.GATEWAY, gateway),
                      (Fault.TIMEOUT, timeout))
        self._slow = slow

    def draw(self) -> FaultPlan:
        with self._lock:
            roll, slow_roll = self._rng.random(), self._rng.random()
            status = self._rng.choice((502, 503, 504))
        fault = None
        for candidate, probability in self._odds:
            if roll < probability:
                fault = candidate
                break
            roll -= probability
        return FaultPlan(fault, slow_roll < self._slow, status)
