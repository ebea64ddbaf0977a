"""JSON decoding and encoding that never raises on odd but legal input.

orjson is the fast path. It rejects a few things the JSON grammar or
Python's json module accept (a UTF-8 byte-order mark, integers beyond 64
bits on dump), so each helper falls back to the standard library before
declaring the input bad.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from common.errors import LakeError

_BOM = b"\xef\xbb\xbf"
#: orjson's nesting limit; :func:`loads` gives orjson's verdict on every Python version.
MAX_DEPTH = 1024


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
    except RecursionError:
        raise NotJson("not valid JSON: nested too deeply") from None


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
