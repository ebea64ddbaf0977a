"""Okta's error responses: the JSON body every Okta API error has, raised as an exception."""

from __future__ import annotations

import secrets
import string

import orjson

_ID_ALPHABET = string.ascii_letters + string.digits

SUMMARIES = {
    "E0000001": "Api validation failed: {detail}",
    "E0000006": "You do not have permission to perform the requested action",
    "E0000007": "Not found: Resource not found: {detail} (Resource)",
    "E0000009": "Internal Server Error",
    "E0000011": "Invalid token provided",
    "E0000022": "The endpoint does not support the provided HTTP method",
    "E0000031": "Invalid search criteria.",
    "E0000047": "API call exceeded rate limit due to too many requests.",
    "E0000053": "Invalid parameter: {detail}",
}

# Okta's documented wording when a System Log query runs past its 30 s timeout.
QUERY_TIMEOUT = ("Your last request took too long to complete. This is likely due to a load issue on our side. "
                 "We've logged this and will work to address it. Please either simplify your query or wait a few "
                 "minutes and try again.")


class OktaError(Exception):
    """An Okta API error: HTTP status, errorCode, summary and causes."""

    def __init__(self, status: int, code: str, detail: str = "", causes: tuple[str, ...] = (),
                 summary: str | None = None, headers: tuple[tuple[str, str], ...] = ()):
        self.status = status
        self.code = code
        self.summary = summary or SUMMARIES[code].format(detail=detail)
        self.causes = causes
        self.headers = headers
        super().__init__(f"{status} {code}: {self.summary}")

    def body(self) -> bytes:
        return orjson.dumps({
            "errorCode": self.code,
            "errorSummary": self.summary,
            "errorLink": self.code,
            "errorId": "oae" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22)),
            "errorCauses": [{"errorSummary": cause} for cause in self.causes],
        })


def validation_error(param: str, *problems: str) -> OktaError:
    """400 E0000001 for one bad query parameter, worded like Okta's own."""
    return OktaError(400, "E0000001", " ".join(f"'{param}': {problem}" for problem in problems),
                     causes=tuple(f"{param}: {problem}" for problem in problems))
