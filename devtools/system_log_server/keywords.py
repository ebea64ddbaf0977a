"""The ``q`` parameter: case-insensitive keywords that must each match an attribute value exactly.

Okta documents that every keyword must match exactly, case-insensitively,
against the event's attribute values, and that a hyphenated value also
matches each of its parts. A keyword here matches a whole value, or one of
its words: runs of letters, digits and ``. _ @ -`` (so ``q=San Francisco``
and ``q=interestingURI.com`` work), or a part of a hyphenated word. The
exact tokenizer is Okta's secret; this is a close, documented stand-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson

from devtools.system_log_server.store import event_document

MAX_KEYWORD = 40
_WORD = re.compile(r"[\w.@-]+")


class KeywordError(ValueError):
    """A keyword is longer than Okta allows."""


def parse_keywords(q: str) -> tuple[str, ...]:
    keywords = tuple(word.lower() for word in q.split())
    if any(len(word) > MAX_KEYWORD for word in keywords):
        raise KeywordError(f"Freeform search cannot contain items longer than {MAX_KEYWORD} characters. Please "
                           "shorten the items in your search or use an advanced filter to query by specific fields.")
    return keywords


def matches(keywords: tuple[str, ...], data: bytes) -> bool:
    """Whether every keyword matches the serialized event ``data``."""
    lowered = data.lower()
    # Cheap rejection first: a keyword that is not even a substring of the JSON text cannot match a value.
    if any(word.encode() not in lowered for word in keywords if word.isascii() and word.isprintable()
           and '"' not in word and "\\" not in word):
        return False
    candidates = set(_candidates(event_document(data)))
    return all(word in candidates for word in keywords)


def _candidates(node) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _candidates(value)
    elif isinstance(node, list):
        for item in node:
            yield from _candidates(item)
    elif node is not None:
        text = (node if isinstance(node, str) else orjson.dumps(node).decode()).lower()
        yield text
        for word in _WORD.findall(text):
            yield word
            if "-" in word:
                yield from word.split("-")
