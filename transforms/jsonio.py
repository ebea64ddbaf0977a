"""JSON decoding and encoding that never raises on odd but legal input.

orjson is the fast path. It rejects a few things the JSON grammar or
Python's json module accept (a UTF-8 byte-order mark, integers beyond 64
bits on dump), so each helper falls back to the standard library before
declaring the input bad.

A JSON array orjson refuses is not refused whole when it is structurally whole
(:func:`loads_or_elements`): its elements are handed back to be judged one by one,
so one bad event in a page costs that event only (:mod:`common.json_scan`).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from common.errors import LakeError
from common.json_scan import split_array, top_level_strings

_BOM = b"\xef\xbb\xbf"
#: orjson's nesting limit; :func:`loads` gives orjson's verdict on every Python version.
MAX_DEPTH = 1024
#: The LogEvent fields every consumer relies on (:func:`envelope_strings`).
ENVELOPE_KEYS = frozenset({"uuid", "eventType", "published"})


class NotJson(LakeError, ValueError):
    """The payload is not a JSON document."""


def _not_json_constant(constant: str):
    # Python's json accepts NaN and Infinity; JSON does not (nor does orjson, the fast path).
    raise ValueError(f"{constant} is not JSON")


def loads(payload: bytes) -> Any:
    """Decode one JSON document, or raise :class:`NotJson` with a clear reason."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as first_error:
        return _lenient(payload, first_error)
    except RecursionError:
        raise NotJson("not valid JSON: nested too deeply") from None


def loads_or_elements(payload: bytes) -> tuple[Any, list[bytes] | None]:
    """``(document, None)`` as :func:`loads` decodes it; or ``(None, elements)`` when orjson refuses a payload that
    is a whole JSON array (:func:`common.json_scan.split_array`): the text of each element, for the caller to
    judge one by one. Raises :class:`NotJson` as :func:`loads` does."""
    try:
        return orjson.loads(payload), None
    except orjson.JSONDecodeError as first_error:
        elements = split_array(payload)
        if elements is not None:
            return None, elements
        return _lenient(payload, first_error), None
    except RecursionError:
        raise NotJson("not valid JSON: nested too deeply") from None


def _lenient(payload: bytes, first_error: orjson.JSONDecodeError) -> Any:
    """The standard library's verdict on what orjson refused (``first_error``), or :class:`NotJson`."""
    if "depth limit" in str(first_error):
        # orjson stops at MAX_DEPTH levels; the standard library's limit differs by Python version
        # (3.13 accepts far deeper), so the verdict is orjson's on every version.
        raise NotJson(f"not valid JSON: nested too deeply ({first_error})") from None
    data = payload[3:] if payload.startswith(_BOM) else payload
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotJson(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_not_json_constant)
    except (ValueError, RecursionError):
        raise NotJson(f"not valid JSON: {first_error}") from None


def envelope_strings(payload: bytes) -> dict[str, str]:
    """``uuid``, ``eventType`` and ``published`` of a payload no decoder accepts, when it is a whole JSON object
    holding them as strings (each one that is); empty otherwise. For dead letters, never for a verdict."""
    return top_level_strings(payload, ENVELOPE_KEYS) or {}


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, key order kept."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        # ensure_ascii escapes lone surrogates, so the result is always valid UTF-8.
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def dumps_text(value: Any) -> str:
    return dumps(value).decode("utf-8", "backslashreplace")


def payload_text(payload: bytes | bytearray | memoryview | str) -> tuple[str, bool]:
    """Text of an original payload, and whether bytes had to be escaped."""
    if isinstance(payload, str):
        return payload, False
    data = bytes(payload)
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "backslashreplace"), True


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (``object``, ``array``, ``string``, ...), for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
