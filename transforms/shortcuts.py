"""Decode shortcuts that change no verdict: the envelope skim of unselected events and the typed decoder of kept ones.

Anything they doubt goes to the full path (:func:`transforms.decode.decode_batch`), which gives the verdict.

- **The skim** (:func:`skim_batch`). Most payloads are events the selection does not keep (three
  quarters of a replayed export, far more in a real org). Those are judged without building them:
  :data:`_ENVELOPE` (msgspec) validates the whole payload's JSON while decoding only the three
  envelope fields, and UTF-8 is checked separately (msgspec does not check it inside skipped
  strings). A payload is counted as filtered on that path only when the full decode would reach the
  very same verdict; anything else (selected, invalid, not an object, msgspec refusing what the
  standard library accepts such as ``NaN``) takes the full path, so every broken payload is still a
  dead letter whatever its type.
- **The typed decoder** (:class:`LineDecoder`). A kept whole-payload event is decoded straight into
  its row values by a msgspec Struct generated from :mod:`schemas.fields` (with the flattener's
  column tree, :func:`transforms.flatten.column_tree`), judged by the same rules
  (:func:`typed_event`); a wrong type, a number to coerce, a missing field again takes the full path.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from schemas.fields import TARGET_COLUMNS, Column
from transforms import jsonio
from transforms.envelope import InvalidEvent, published_datetime
from transforms.flatten import EXTRACTED_EVENT_COLUMNS, PY_TYPES, column_tree
from transforms.selection import EventTypeSelection


class _Envelope(msgspec.Struct, gc=False):
    # Typed: a field that is not a string fails the decode (the full path then judges), so no type checks here.
    uuid: str = ""
    eventType: str = ""
    published: str = ""


_ENVELOPE = msgspec.json.Decoder(_Envelope)
#: Valid JSON nesting deeper than jsonio.MAX_DEPTH opens and closes that many brackets: at least this many bytes
#: (the bracket count costs ~1 us a line, so lines shorter than this skip it: 9 in 10 of a typical export).
_MIN_DEEP_BYTES = 2 * (jsonio.MAX_DEPTH + 1)


def _maybe_too_deep(payload: bytes) -> bool:
    """Whether a payload of ``_MIN_DEEP_BYTES`` or more may nest deeper than the full decode allows
    (orjson: ``jsonio.MAX_DEPTH``). msgspec's own limit follows the interpreter's C recursion limit, which
    differs by Python version, so such a payload is left to the full path. A shorter payload that msgspec
    accepts is valid JSON, so it cannot nest that deep (callers test the length first: it is cheap)."""
    return payload.count(b"[") + payload.count(b"{") > jsonio.MAX_DEPTH


def _valid_utf8(payload: bytes) -> bool:
    """What the full path's decoders require of a non-ASCII payload (msgspec does not check the strings it skips)."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def surely_filtered(payload: bytes, selection: Callable[[str], bool]) -> bool:
    """True only when ``payload`` is one valid event the selection does not keep.

    Exact: True implies :func:`transforms.decode.decode_batch`'s full path would decode it as a
    JSON object with a non-empty string ``uuid`` and ``eventType``, a valid
    ``published``, and count it as filtered. False says nothing: decode it fully.
    """
    return not skim_batch(((0, payload),), selection)[1]


def skim_batch(items, selection: Callable[[str], bool]) -> tuple[int, list]:
    """``(filtered, rest)``: how many ``(position, payload)`` items are surely filtered (see
    :func:`surely_filtered`), and the others, in order, for the full decode.

    A payload that is not an object goes to ``rest`` at once. One loop for a whole batch: per line, this
    costs about as much as the msgspec decode itself. (A bytes search for the selected types' text, to
    send likely-kept lines on without the envelope decode, cost more than it saved: 0.6 us a line to
    scan, against 1.1 us saved on a quarter of the lines, measured; and kept types are rare in a real org.)
    """
    decode = _ENVELOPE.decode
    inline = type(selection) is EventTypeSelection
    exact, prefixes = (selection.exact, selection.prefixes) if inline else ((), ())
    min_deep = _MIN_DEEP_BYTES
    rest: list = []
    keep = rest.append
    filtered = 0
    for item in items:
        payload = item[1]
        if payload[:1] != b"{":
            keep(item)
            continue
        if len(payload) >= min_deep and _maybe_too_deep(payload):
            keep(item)
            continue
        try:
            envelope = decode(payload)
        except Exception:  # noqa: BLE001 - not JSON, not an object, too deep, NaN, not a string...: full path
            keep(item)
            continue
        event_type = envelope.eventType  # "" when absent
        if not event_type or not envelope.uuid.strip() \
                or ((event_type in exact or event_type.startswith(prefixes)) if inline else selection(event_type)):
            keep(item)
            continue
        if not payload.isascii() and not _valid_utf8(payload):
            keep(item)
            continue
        try:
            published_datetime(envelope.published)
        except InvalidEvent:
            keep(item)
            continue
        filtered += 1
    return filtered, rest


def typed_event(typed, payload: bytes):
    """``(uuid, eventType, published datetime, prepared)`` when ``typed`` decodes the payload and the
    ordinary path would accept it as one valid event (as :func:`transforms.envelope.validate` and
    :func:`skim_batch` judge), else None."""
    if len(payload) >= _MIN_DEEP_BYTES and _maybe_too_deep(payload):
        return None
    found = typed(payload)
    if found is None:
        return None
    uuid, event_type, published, prepared = found
    if uuid is None or not uuid.strip() or not event_type or published is None:
        return None
    if not payload.isascii() and not _valid_utf8(payload):
        return None
    try:
        return uuid, event_type, published_datetime(published), prepared
    except InvalidEvent:
        return None


def _typed_struct(tree: dict, name: str, ready: dict) -> tuple[type, dict]:
    """A msgspec Struct type for the JSON object ``tree`` describes, and ``key -> (attribute, what)``.

    Every field is optional (absent or null -> None) and strictly typed. ``what`` is a leaf's
    ``(index, column)``, a nested object's own mapping, or None for the ``ready`` fields (given types).
    """
    fields, named = [], {}
    for key, sub in {**tree, **ready}.items():
        attr = f"f{len(fields)}"
        if key in ready:
            type_, named[key] = sub, (attr, None)
        elif type(sub) is tuple:
            type_, named[key] = PY_TYPES[sub[1].type], (attr, sub)
        else:
            type_, child = _typed_struct(sub, f"{name}_{key}", {})
            named[key] = (attr, child)
        fields.append((attr, type_ | None, msgspec.field(default=None, name=key)))
    return msgspec.defstruct(name, fields, gc=False), named


def _compile_typed(event_columns: tuple[Column, ...], target_columns: tuple[Column, ...]):
    """Generate a msgspec Struct type for a LogEvent holding only the envelope and the schema's fields,
    and ``from_struct(event) -> (event values, target rows)`` reading it as the flattener's
    extractors (:class:`transforms.flatten.Flattener`) read a dict.

    Strict types are what keep it exact: a number in a string field, a string in a boolean one, an
    array where an object belongs or a null ``target[]`` entry fails the decode, and
    :class:`LineDecoder` then leaves the event to the ordinary path, which coerces or dead-letters it.
    """
    target_type, target_named = _typed_struct(column_tree(target_columns), "TypedTarget", {})
    envelope = {"uuid": str, "eventType": str, "published": str, "target": list[target_type]}
    event_type, named = _typed_struct(column_tree(event_columns), "TypedEvent", envelope)
    lines = ["def from_struct(ev):"] + [f"    c{i} = None" for i in range(len(event_columns))]
    depth = [0]

    def emit(node: dict, var: str, indent: str, prefix: str) -> None:
        for attr, sub in node.values():
            if sub is None:
                continue
            if type(sub) is tuple:
                lines.append(f"{indent}{prefix}{sub[0]} = {var}.{attr}")
                continue
            depth[0] += 1
            child = f"o{depth[0]}"
            lines.append(f"{indent}{child} = {var}.{attr}")
            lines.append(f"{indent}if {child} is not None:")
            emit(sub, child, indent + "    ", prefix)

    values = "(" + "".join(f"c{i}, " for i in range(len(event_columns))) + ")"
    emit(named, "ev", "    ", "c")
    lines += [f"    targets = ev.{named['target'][0]}",
              "    if not targets:",  # null or [] -> one row without a target, as in Flattener._extract
              f"        return {values}, NO_TARGET",
              "    rows = []",
              "    for i, t in enumerate(targets):"]
    lines += [f"        t{i} = None" for i in range(len(target_columns))]
    emit(target_named, "t", "        ", "t")
    lines += ["        rows.append((i, " + "".join(f"t{i}, " for i in range(len(target_columns))) + "))",
              f"    return {values}, rows"]
    namespace = {"NO_TARGET": [(None,) * (1 + len(target_columns))]}
    exec("\n".join(lines), namespace)  # noqa: S102 - source built from the schema only
    return event_type, namespace["from_struct"], tuple(named[key][0] for key in ("uuid", "eventType", "published"))


class LineDecoder:
    """One JSON payload -> ``(uuid, eventType, published, (event values, target rows))``, or None.

    The fast path for a whole-payload event (a JSON Lines line, a Pub/Sub message): msgspec decodes
    the payload straight into the schema's fields (:func:`_compile_typed`), validating the whole
    JSON text but building nothing else, about three times cheaper than a dict plus the extractors.
    None means "not judged here": the payload may be anything (not JSON, not an object, an Event
    Hook envelope, a wrong type, a number to coerce, a missing uuid); the caller then takes the
    ordinary path, which gives the verdict. The envelope values are returned unchecked (the
    caller validates them as it validates a dict's).
    """

    def __init__(self):
        struct, self._from_struct, (self._uuid, self._type, self._published) = _compile_typed(
            EXTRACTED_EVENT_COLUMNS, TARGET_COLUMNS)
        self._decode = msgspec.json.Decoder(struct).decode

    def __call__(self, payload: bytes):
        try:
            event = self._decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # ValidationError is a DecodeError
            return None
        return (getattr(event, self._uuid), getattr(event, self._type), getattr(event, self._published),
                self._from_struct(event))
