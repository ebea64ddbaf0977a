"""Where a URI points: its scheme, bucket and key, how paths join, and what a glob matches (no I/O here).

A URI is a local path (or ``file://...``), ``gs://bucket/key`` or ``s3://bucket/key``. Globs mean
what Beam's filesystems made them mean before this package spoke to the stores itself: ``*`` and
``?`` stay within one path segment, ``**`` crosses segments, and only files match (never a folder).
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

OBJECT_SCHEMES = ("gs", "s3")
_SCHEME = re.compile(r"^([a-zA-Z][-a-zA-Z0-9+.]*)://")


def scheme(uri: str) -> str | None:
    found = _SCHEME.match(uri)
    return found.group(1).lower() if found else None


def is_local(uri: str) -> bool:
    return scheme(uri) in (None, "file")


def local_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


def join(base: str, *parts: str) -> str:
    base = base.rstrip("/")
    if is_local(base):
        return os.path.join(base, *parts)
    return "/".join([base, *(part.strip("/") for part in parts)])


class ObjectPath(NamedTuple):
    """``scheme://bucket/key`` taken apart."""

    scheme: str
    bucket: str
    key: str

    def uri(self, key: str | None = None) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key if key is None else key}"


def object_path(uri: str) -> ObjectPath:
    found = scheme(uri)
    if found not in OBJECT_SCHEMES:
        raise ValueError(f"{uri!r} is not a gs:// or s3:// URI")
    bucket, _, key = uri[len(found) + 3:].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return ObjectPath(found, bucket, key)


def literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard (what a store can list by)."""
    found = re.search(r"[*?\[]", pattern)
    return pattern if found is None else pattern[:found.start()]


def glob_regex(pattern: str) -> re.Pattern:
    """A regular expression that matches the whole paths a glob matches."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1:end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def depth_limited(pattern: str) -> int | None:
    """How many segments below its literal prefix's folder a glob can match, None when ``**`` makes it any."""
    if "**" in pattern:
        return None
    prefix = literal_prefix(pattern)
    return pattern[len(prefix.rsplit("/", 1)[0]) + 1:].count("/") if "/" in prefix else pattern.count("/")
