"""One corpus of hostile LogEvents, for the tests that feed the same events to every source.

Real events (``tests/fixtures/real-okta``) made personal, most damaged in one way that the decoders refuse or
disagree on: lone surrogate escapes, invalid UTF-8, a raw control character, ``NaN``/``Infinity``, ``1e400``,
nesting past 1,024 levels, duplicate keys, wrong types, numbers in string fields. Each is a JSON Lines line
(bytes), compact, so the same bytes make a JSON Lines file, a saved ``/api/v1/logs`` page (:func:`page`), the
local System Log server's pages and Pub/Sub messages.

Every line keeps ``uuid``, ``eventType`` and ``published`` as readable strings (so the System Log server stores
and serves it as it is), and every damaged event is personal (so a filter pushed down to Okta selects the same
damaged events a file run reads).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple

from tests.support.okta import iso, valid_templates

PERSONAL = ("personal.admin.configuration.update", "personal.user.app_migration.export")
DEPTH = 1100  # past orjson's 1,024 levels


class Hostile(NamedTuple):
    name: str
    uuid: str
    line: bytes
    fate: str  # "kept", "filtered", or the stage of its one dead letter: "decode", "flatten"


def _compact(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


# name, fate, how to damage: (the debugContext.debugData member "x" or a top-level key, its raw JSON value)
_DAMAGE = [
    ("lone surrogate in a column", "flatten", ("displayMessage", rb'"before \ud800 after"')),
    ("lone surrogate elsewhere", "kept", ("x", rb'"\udfff"')),
    ("surrogate pair", "kept", ("x", rb'"\ud83d\ude00 ok"')),
    ("invalid UTF-8", "decode", ("displayMessage", b'"caf\xe9 cr\xe8me"')),
    ("raw control character", "decode", ("displayMessage", b'"tab\there"')),
    ("NaN", "decode", ("x", b"NaN")),
    ("-Infinity", "decode", ("x", b"-Infinity")),
    ("1e400", "kept", ("x", b"1e400")),
    (f"nested {DEPTH} levels", "decode", ("x", b"[" * DEPTH + b"]" * DEPTH)),
    ("nested 1,000 levels", "kept", ("x", b"[" * 1000 + b"]" * 1000)),
    ("target a string", "flatten", ("target", b'"nope"')),
    ("actor an array", "flatten", ("actor", b'["admin@example.com"]')),
    ("isProxy a string", "flatten", ("securityContext", b'{"isProxy":"yes"}')),
    ("numbers in string fields", "kept", ("actor", b'{"id":12345,"type":"User","alternateId":7.5}')),
]


def corpus(start: dt.datetime, step: dt.timedelta = dt.timedelta(seconds=1)) -> list[Hostile]:
    """The corpus, published from ``start`` on, ``step`` apart: damaged events, clean ones, filtered ones."""
    templates = valid_templates()
    entries: list[Hostile] = []

    def event(index: int, event_type: str) -> dict:
        copied = dict(templates[index % len(templates)])
        copied.update(uuid=f"hostile-{index:03d}", eventType=event_type, published=iso(start + index * step))
        copied.pop("displayMessage", None)
        copied["debugContext"] = {"debugData": {"requestUri": "/api/v1/x"}}
        return copied

    for index, (name, fate, (key, raw)) in enumerate(_DAMAGE):
        base = event(index, PERSONAL[index % 2])
        if key == "x":
            marker = b'"requestUri":"/api/v1/x"'
            line = _compact(base).replace(marker, marker + b',"x":' + raw)
        else:
            base[key] = "@@damage@@"
            line = _compact(base).replace(b'"@@damage@@"', raw)
        entries.append(Hostile(name, base["uuid"], line, fate))
    index = len(entries)
    # Duplicate keys: the last one counts, as in every decoder the pipeline uses.
    base = event(index, PERSONAL[0])
    line = _compact(base).replace(b'{', b'{"eventType":"user.session.start","uuid":"hostile-dup-first",', 1)
    entries.append(Hostile("duplicate keys", base["uuid"], line, "kept"))
    for offset in range(1, 5):  # clean personal events
        base = event(index + offset, PERSONAL[offset % 2])
        entries.append(Hostile("clean", base["uuid"], _compact(base), "kept"))
    base = event(index + 5, "user.session.start")
    entries.append(Hostile("other type", base["uuid"], _compact(base), "filtered"))
    return entries


def page(entries: list[Hostile]) -> bytes:
    """The corpus as one saved ``/api/v1/logs`` page (a compact JSON array)."""
    return b"[" + b",".join(entry.line for entry in entries) + b"]"


def pretty_page(entries: list[Hostile]) -> bytes:
    """The corpus as a pretty-printed page: the clean events indented over many lines, the damaged ones as they are."""
    parts = [json.dumps(json.loads(entry.line), indent=2, ensure_ascii=False).encode()
             if entry.name in ("clean", "other type") else entry.line for entry in entries]
    return b"[\n" + b",\n".join(parts) + b"\n]\n"
