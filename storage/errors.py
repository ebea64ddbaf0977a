"""The error of a store (local disk, ``gs://``, ``s3://``): an ``OSError`` that says whether a rerun may succeed."""

from __future__ import annotations

from common.errors import LakeError

#: HTTP statuses of a store that a later attempt may not get: throttling, timeouts, the store's own failures.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class StoreError(LakeError, OSError):
    """A store refused or failed an operation: ``status`` is its HTTP status (None: no answer at all,
    which is retryable). The message names the operation and the URI, never a credential."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
        self.retryable = status is None or status in RETRYABLE_STATUSES

    def __reduce__(self):
        # OSError leaves ``args`` to __init__, which unpickling does not call: carry them in the state too.
        rebuild, arguments, state = super().__reduce__()
        return rebuild, arguments, {**state, "args": self.args}

    @classmethod
    def retryable_from_message(cls, message: str) -> bool:
        return "(HTTP " not in message or any(f"(HTTP {s})" in message for s in RETRYABLE_STATUSES)
