"""Errors the client raises, each naming the request (never a credential).

An :class:`OktaApiError` is retryable when Okta may answer otherwise later: no response at
all, a 5xx, a 408 or a 429 (after the client's own retries and waits), or a 200 whose body
was cut short every time (:class:`IncompleteBody`); any other 4xx (a refused credential, a
missing permission, a bad query) is fatal, as is a bad setup.
"""

from __future__ import annotations

import re

from common.errors import LakeError

# What OktaApiError's message says after the request: "-> HTTP 503 ..." or "-> no response".
_ANSWER = re.compile(r"^\S+ \S+ -> (?:HTTP (\d+)|no response)")


def _retryable_status(status: int | None) -> bool:
    return status is None or status in (408, 429) or status >= 500


class ConfigurationError(LakeError, ValueError):
    """The client cannot be set up as asked (bad URL, missing credentials, unreadable key)."""


class UnsafeUrl(ConfigurationError):
    """A URL the client refuses to send credentials to."""


class OktaApiError(LakeError, RuntimeError):
    """A final error answer from Okta (a 4xx other than 429, or retries exhausted)."""

    def __init__(self, method: str, url: str, status: int | None, code: str | None, summary: str):
        self.method, self.url, self.status, self.code, self.summary = method, url, status, code, summary
        self.retryable = _retryable_status(status)
        where = f"{method} {url}"
        what = f"HTTP {status}" if status is not None else "no response"
        if code:
            what += f" {code}"
        super().__init__(f"{where} -> {what}: {summary}")

    @classmethod
    def retryable_from_message(cls, message: str) -> bool:
        answer = _ANSWER.match(message)
        if answer is None:  # not this class's message (cut short?): the class's verdict
            return cls.retryable
        return _retryable_status(int(answer.group(1)) if answer.group(1) else None)


class Stopped(LakeError):
    """The reader was asked to stop while it waited (a rate-limit window, a backoff): not a failure.

    Raised out of a wait so that a run stops on time (``--stop_after``, a shutdown) instead of
    sleeping out a 429 window; what it had read but not committed is read again by the next run.
    """

    retryable = True


class QueryTimeout(OktaApiError):
    """Okta's 500 E0000009: the query ran past Okta's 30 s limit (split the time range)."""


class ResponseTooLarge(OktaApiError):
    """A response larger than the configured limit (refused, not read into memory)."""


class IncompleteBody(OktaApiError):
    """A 200 whose body was not whole JSON on every attempt (cut short): retryable, the next run may read it whole.

    A body that is a whole JSON array is never this, even when an event in it is not valid JSON: that event is
    one dead letter downstream (:func:`okta_client.pages.read_page`).
    """

    retryable = True

    def __init__(self, method: str, url: str, status: int | None, code: str | None, summary: str):
        super().__init__(method, url, status, code, summary)
        self.retryable = True

    @classmethod
    def retryable_from_message(cls, message: str) -> bool:
        return True
