"""One-time values (JWT ``jti`` claims, DPoP nonces) remembered until they expire."""

from __future__ import annotations

import threading
import time


class ExpiringSet:
    def __init__(self):
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def add_new(self, value: str, expires_at: float) -> bool:
        """Remember ``value``; False if it is already remembered (a replay)."""
        with self._lock:
            self._forget_expired()
            if value in self._expiry:
                return False
            self._expiry[value] = expires_at
            return True

    def __contains__(self, value: str) -> bool:
        with self._lock:
            self._forget_expired()
            return value in self._expiry

    def _forget_expired(self) -> None:
        now = time.time()
        for value in [v for v, expires_at in self._expiry.items() if expires_at <= now]:
            del self._expiry[value]
