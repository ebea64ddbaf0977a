"""Errors the client raises, each naming the request (never a credential)."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """The client cannot be set up as asked (bad URL, missing credentials, unreadable key)."""


class UnsafeUrl(ConfigurationError):
    """A URL the client refuses to send credentials to."""


class OktaApiError(RuntimeError):
    """A final error answer from Okta (a 4xx other than 429, or retries exhausted)."""

    def __init__(self, method: str, url: str, status: int | None, code: str | None, summary: str):
        self.method, self.url, self.status, self.code, self.summary = method, url, status, code, summary
        where = f"{method} {url}"
        what = f"HTTP {status}" if status is not None else "no response"
        if code:
            what += f" {code}"
        super().__init__(f"{where} -> {what}: {summary}")


class QueryTimeout(OktaApiError):
    """Okta's 500 E0000009: the query ran past Okta's 30 s limit (split the time range)."""


class ResponseTooLarge(OktaApiError):
    """A response larger than the configured limit (refused, not read into memory)."""
