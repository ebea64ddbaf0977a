"""What the body of a 200 answer of ``/api/v1/logs`` holds: the page, or why it is not whole.

A body is cut short when a connection drops under a lying ``Content-Length``: asking again helps. A
body that is a whole JSON array is never asked for again, even when orjson refuses an event in it (a
lone surrogate escape, a ``NaN``, nesting past 1,024 levels, invalid UTF-8): asking again would get the
same bytes and stop the chain for good. That event is judged (and dead-lettered) downstream with the
rest of the page (:func:`transforms.decode.decode_batch`); here it only needs to be counted and, when it
is the page's last, to tell its ``published`` (:func:`common.json_scan.split_array`).
"""

from __future__ import annotations

from typing import Any

import orjson

from common.json_scan import split_array, top_level_strings

_ENVELOPE = frozenset({"uuid", "eventType", "published"})


def read_page(body: bytes) -> tuple[Any, str | None]:
    """``(the decoded body, None)``, or ``(None, what is wrong)`` when the body is not whole JSON.

    In a whole array orjson refuses, each element orjson refuses stands as a dict of its ``uuid``,
    ``eventType`` and ``published`` that are readable strings (possibly none of them).
    """
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError as error:
        elements = split_array(body)
        if elements is None:
            return None, f"a body that is not whole JSON, cut short? ({len(body):,} bytes; {error})"
        return [_event(text) for text in elements], None


def _event(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return top_level_strings(text, _ENVELOPE) or {}
