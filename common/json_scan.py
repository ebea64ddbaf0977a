"""The structure of JSON text, read without decoding it: a top-level array's elements, an object's top-level strings.

A strict decoder refuses a whole document for one bad value in it (a ``NaN``, a lone surrogate escape,
invalid UTF-8, nesting past its limit). These functions tell such a document apart from one that was cut
short, and find the parts that can still be judged one by one:

- :func:`split_array`: the text of each element of a JSON array, or None when the array is not whole
  (cut short, brackets unbalanced or mismatched, an unterminated string, an empty element).
- :func:`top_level_strings`: the string members of a JSON object that is whole (``uuid``, ``eventType``,
  ``published`` of a LogEvent the decoders refuse), for dead letters and placeholders.

Only strings, escapes, brackets and separators are looked at (one regular expression, so the loop runs per
token, not per byte): what lies between them is the decoders' business, judged element by element later. The
Okta client (a page that is whole but holds a bad event is not retried), the decode (one bad event is one dead
letter) and the local System Log server (which serves such events as they are) share these rules.
"""

from __future__ import annotations

import re

import orjson

__all__ = ["split_array", "top_level_strings"]

_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# Strings and other bytes up to the next structural byte, which is group 1 ('"' when a string never closes, b""
# at the end of the text). Between a top-level array's elements commas count; inside an element they do not.
_TO_NEXT = re.compile(rb'(?:[^"\[\]{},]+|' + _STRING + rb')*(["\[\]{},]?)', re.DOTALL)
_TO_NEXT_BRACKET = re.compile(rb'(?:[^"\[\]{}]+|' + _STRING + rb')*(["\[\]{}]?)', re.DOTALL)
# A string token (group 1 is its closing quote, empty when the text ends inside it), or a structural byte.
_OBJECT_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*("?)|[][{},:]', re.DOTALL)
_QUOTE, _COMMA, _COLON = ord('"'), ord(","), ord(":")
_OPEN_ARRAY, _OPEN_OBJECT, _CLOSE_ARRAY, _CLOSE_OBJECT = ord("["), ord("{"), ord("]"), ord("}")
_CLOSES = {_CLOSE_ARRAY: _OPEN_ARRAY, _CLOSE_OBJECT: _OPEN_OBJECT}
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def _start(data: bytes) -> int:
    """Where the document starts: after a UTF-8 byte-order mark and whitespace."""
    start = 3 if data.startswith(_BOM) else 0
    while start < len(data) and data[start] in _WHITESPACE:
        start += 1
    return start


def split_array(data: bytes) -> list[bytes] | None:
    """The text of each element of the JSON array ``data`` (whitespace trimmed), or None when it is not whole.

    Whole: after an optional byte-order mark and whitespace, ``[`` opens it, every string is closed, every
    bracket is closed by its own kind, no element is empty, and only whitespace follows the closing ``]``.
    A prefix of a valid array is never whole (its depth returns to zero only at the last ``]``). The
    elements themselves are not checked: each is judged on its own by the caller.
    """
    data = bytes(data)
    start = _start(data)
    if data[start:start + 1] != b"[":
        return None
    elements: list[bytes] = []
    stack = [_OPEN_ARRAY]
    position = begin = start + 1
    top, inner = _TO_NEXT.match, _TO_NEXT_BRACKET.match
    while True:  # one step per bracket, and per comma between elements: ~30 us per 1 kB event
        step = (top if len(stack) == 1 else inner)(data, position)
        position = step.end()
        found = step.group(1)
        kind = found[0] if found else None
        if kind in (_OPEN_ARRAY, _OPEN_OBJECT):
            stack.append(kind)
        elif kind in (_CLOSE_ARRAY, _CLOSE_OBJECT):
            if stack.pop() != _CLOSES[kind]:
                return None
            if not stack:
                element = data[begin:position - 1].strip(_WHITESPACE)
                if element:
                    elements.append(element)
                elif elements:
                    return None  # a trailing comma
                return elements if not data[position:].strip(_WHITESPACE) else None
        elif kind == _COMMA:
            element = data[begin:position - 1].strip(_WHITESPACE)
            if not element:
                return None
            elements.append(element)
            begin = position
        else:
            return None  # the text ends inside a string, or before the array is closed


def top_level_strings(data: bytes, keys: frozenset[str] | set[str]) -> dict[str, str] | None:
    """The members of the JSON object ``data`` named in ``keys`` whose values are strings, or None when ``data``
    is not a whole object (as :func:`split_array` judges wholeness).

    Names and values are decoded strictly (JSON escapes honoured): a value that is not valid on its own (a lone
    surrogate escape, invalid UTF-8) is left out. A repeated name counts with its last value, as the decoders do.
    """
    data = bytes(data)
    start = _start(data)
    if data[start:start + 1] != b"{":
        return None
    found: dict[str, str] = {}
    stack: list[int] = []
    name = value = None  # the current top-level member's name token and value token (b"" if not one string)
    for token in _OBJECT_TOKENS.finditer(data, start):
        kind = data[token.start()]
        top = len(stack) == 1
        if kind == _QUOTE:
            if not token.group(1):
                return None  # the text ends inside a string
            if top:
                if name is None:
                    name = token.group()
                else:
                    value = token.group() if value is None else b""
        elif kind == _COLON:
            if top and value is not None:
                value = b""
        elif kind == _COMMA or kind in _CLOSES:
            if top:
                _member(found, keys, name, value)
                name = value = None
            if kind != _COMMA:
                if not stack or stack.pop() != _CLOSES[kind]:
                    return None
                if not stack:
                    return found if not data[token.end():].strip(_WHITESPACE) else None
        else:
            if top and name is not None:
                value = b""  # an array or object value
            stack.append(kind)
    return None


def _member(found: dict, keys, name: bytes | None, value: bytes | None) -> None:
    """Record one top-level member: its string value, or (a later non-string value under the same name) none."""
    if not name:
        return
    try:
        key = orjson.loads(name)
    except orjson.JSONDecodeError:
        return
    if key not in keys:
        return
    try:
        text = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        text = None
    if isinstance(text, str):
        found[key] = text
    else:
        found.pop(key, None)
