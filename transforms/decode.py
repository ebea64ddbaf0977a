"""Turn raw payloads into validated LogEvents (pure Python, no Beam).

A payload may hold, in any mix:
- one LogEvent object (a JSON Lines line, a Pub/Sub message),
- a JSON array of LogEvents (a saved ``/api/v1/logs`` page),
- an Okta Event Hook envelope (``{"eventType": "com.okta.event_hook",
  "data": {"events": [...]}}``),
- an AWS EventBridge envelope from Okta Log Streaming (the event is ``detail``).

Each event found is validated for the three envelope fields every consumer
relies on (``uuid``, ``eventType``, ``published``). Anything else becomes a
dead-letter record with a clear reason; nothing raises.

Most payloads are events the selection does not keep (three quarters of a
replayed export, far more in a real org). Those are judged without building
them: :data:`_ENVELOPE` (msgspec) validates the whole payload's JSON while
decoding only the three envelope fields, and UTF-8 is checked separately
(msgspec does not check it inside skipped strings). A payload is counted as
filtered on that path only when the full decode would reach the very same
verdict; anything else (selected, invalid, not an object, msgspec refusing
what the standard library accepts such as ``NaN``) takes the full path, so
every broken payload is still a dead letter whatever its type.

Events that are kept take a second shortcut when the caller gives ``typed``
(:class:`transforms.flatten.LineDecoder`): a whole-payload event is decoded
straight into its row values, judged by the same rules; any doubt again
takes the full path.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import msgspec

from common.errors import LakeError
from transforms import jsonio
from transforms.jsonio import json_type as _json_type
from transforms.records import ParsedEvent, RawBatch, dead_letter
from transforms.selection import EventTypeSelection

UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = _dt.timedelta(microseconds=1)

STAGE_DECODE = "decode"
STAGE_VALIDATE = "validate"


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

    Exact: True implies :func:`decode_batch`'s full path would decode it as a
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


def _selects_everything(selection) -> bool:
    return "" in getattr(selection, "prefixes", ())


class InvalidEvent(LakeError, ValueError):
    """A LogEvent that cannot be used; the message says why."""


def parse_published(value: Any) -> tuple[int, str]:
    """``published`` -> (microseconds since epoch UTC, UTC date ``YYYY-MM-DD``)."""
    utc = published_datetime(value)
    return (utc - _EPOCH) // _ONE_US, utc.date().isoformat()


def published_datetime(value: Any) -> _dt.datetime:
    """``published`` -> timezone-aware UTC datetime, or :class:`InvalidEvent`.

    Accepts RFC 3339 / ISO 8601 extended date-times with ``T`` or a space
    between date and time, any number of fractional digits (cut to
    microseconds) and ``Z`` or a numeric offset. A time without an offset is
    taken as UTC (Okta always writes ``Z``).
    """
    if type(value) is not str:
        raise InvalidEvent(f"'published' must be a string, got {_json_type(value)}")
    if (
        len(value) < 19
        or value[4] != "-"
        or value[7] != "-"
        or value[10] not in "Tt "
        or value[13] != ":"
    ):
        raise InvalidEvent(
            f"'published' is not an RFC 3339 timestamp: {value[:40]!r}"
        )
    try:
        parsed = _dt.datetime.fromisoformat(value.replace("t", "T", 1) if value[10] == "t" else value)
    except ValueError as exc:
        raise InvalidEvent(f"'published' is not a valid timestamp ({exc}): {value[:40]!r}") from None
    tz = parsed.tzinfo
    if tz is UTC:
        return parsed
    if tz is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidEvent(f"'published' is out of range: {value[:40]!r}") from None


def unwrap(document: Any) -> Iterator[tuple[Any, bool]]:
    """Yield ``(candidate_event, is_whole_document)`` for each event in a document.

    Raises :class:`InvalidEvent` for an envelope whose event list is malformed.
    """
    if isinstance(document, list):
        for item in document:
            yield item, False
        return
    if isinstance(document, dict) and "uuid" not in document:
        data = document.get("data")
        if isinstance(data, dict) and "events" in data:
            events = data["events"]
            if not isinstance(events, list):
                raise InvalidEvent(
                    f"Event Hook envelope: 'data.events' must be an array, got {_json_type(events)}"
                )
            for item in events:
                yield item, False
            return
        if "detail" in document and ("detail-type" in document or "source" in document):
            yield document["detail"], False
            return
    yield document, True


def validate(candidate: Any) -> tuple[str, str, _dt.datetime]:
    """Check the envelope; return ``(uuid, eventType, published as UTC datetime)``."""
    if not isinstance(candidate, dict):
        raise InvalidEvent(f"a LogEvent must be a JSON object, got {_json_type(candidate)}")
    uuid = candidate.get("uuid")
    if uuid is None:
        raise InvalidEvent("missing required field 'uuid'")
    if type(uuid) is not str or not uuid.strip():
        raise InvalidEvent(f"'uuid' must be a non-empty string, got {_json_type(uuid)}")
    event_type = candidate.get("eventType")
    if event_type is None:
        raise InvalidEvent("missing required field 'eventType'")
    if type(event_type) is not str or not event_type:
        raise InvalidEvent(f"'eventType' must be a non-empty string, got {_json_type(event_type)}")
    if "published" not in candidate or candidate["published"] is None:
        raise InvalidEvent("missing required field 'published'")
    return uuid, event_type, published_datetime(candidate["published"])


class Decoded(NamedTuple):
    events: list  # ParsedEvent, only of the selected types
    dead_letters: list
    read: int  # event candidates found; a bad payload counts as one
    filtered: int  # valid events of types the selection does not keep

    # read == len(events) + len(dead_letters) + filtered, always


def decode_batch(
    batch: RawBatch,
    max_payload_bytes: int = 16 * 1024 * 1024,
    selection: Callable[[str], bool] | None = None,
    prepare: Callable[[dict], Any] | None = None,
    skim: bool = True,
    org: str | None = None,
    typed: Callable[[bytes], Any] | None = None,
) -> Decoded:
    """Decode and validate every payload of a batch, keeping the selected types.

    Selecting here, not in a later step, matters for speed: an event that is
    dropped at once is freed at once, while a thousand decoded events kept
    alive for a later step cost half again as much to decode (allocator
    growth and cache misses, measured). For the same reason ``prepare`` (the
    flattener's field extraction) runs on each kept event right away; what
    it returns, or the exception it raises, travels in ``ParsedEvent.prepared``.

    ``skim`` judges unselected events with :func:`surely_filtered` before any
    full decode (same counts, same dead letters; ``False`` only for tests
    that prove it).

    ``typed`` (the flattener's :class:`transforms.flatten.LineDecoder`, given with ``prepare``) decodes a
    whole-payload event straight into its row values; a payload it does not judge, or whose envelope
    or text the ordinary path would refuse, takes that path (same events, counts and dead letters).

    Each event's org is the batch's own (``RawBatch.org``), else ``org``; so is each dead letter's
    ``okta_org`` (absent when neither is known).
    """
    events: list[ParsedEvent] = []
    filtered = 0
    dead: list[dict] = []
    read = 0
    origin = batch.origin
    context = batch.context
    kind = batch.position_kind
    org = getattr(batch, "org", None) or org
    if org is not None:  # a dead letter says its org (a failed org's are withheld by the batch commit)
        context = {**(context or {}), "okta_org": org}
    loads = jsonio.loads
    append = events.append
    do_skim = skim and selection is not None and not _selects_everything(selection)
    items = zip(batch.positions, batch.payloads)
    if do_skim:
        filtered, items = skim_batch(items, selection)
        read = filtered
    for pos, payload in items:
        if typed is not None:
            found = _typed_event(typed, payload)
            if found is not None:
                read += 1
                uuid, event_type, published, prepared = found
                if selection is not None and not selection(event_type):
                    filtered += 1
                    continue
                append(ParsedEvent(None, uuid, event_type, published, payload, origin, kind, pos, None,
                                   prepared, org))
                continue
        try:
            document = loads(payload)
        except jsonio.NotJson as exc:
            read += 1
            dead.append(
                dead_letter(stage=STAGE_DECODE, error=str(exc), payload=_line(payload), origin=origin,
                            position=f"{kind} {pos}", context=context,
                            max_payload_bytes=max_payload_bytes)
            )
            continue
        if type(document) is dict and "uuid" in document:  # the common case: one event
            read += 1
            try:
                uuid, event_type, published = validate(document)
            except InvalidEvent as exc:
                dead.append(_invalid(exc, _line(payload), document, origin, f"{kind} {pos}",
                                     context, max_payload_bytes))
                continue
            if selection is not None and not selection(event_type):
                filtered += 1
                continue
            append(ParsedEvent(document, uuid, event_type, published, payload, origin, kind, pos, None,
                               _prepared(prepare, document), org))
            continue
        try:
            for index, (candidate, whole) in enumerate(unwrap(document)):
                read += 1
                try:
                    uuid, event_type, published = validate(candidate)
                except InvalidEvent as exc:
                    where = f"{kind} {pos}" if whole else f"{kind} {pos} event {index}"
                    dead.append(_invalid(exc, _line(payload) if whole else candidate, candidate,
                                         origin, where, context, max_payload_bytes))
                    continue
                if selection is not None and not selection(event_type):
                    filtered += 1
                    continue
                append(ParsedEvent(candidate, uuid, event_type, published,
                                   payload if whole else None, origin, kind, pos,
                                   None if whole else index, _prepared(prepare, candidate), org))
        except InvalidEvent as exc:  # a malformed envelope: one dead letter for all of it
            read += 1
            dead.append(
                dead_letter(stage=STAGE_DECODE, error=str(exc), payload=_line(payload), origin=origin,
                            position=f"{kind} {pos}", context=context,
                            max_payload_bytes=max_payload_bytes)
            )
    return Decoded(events, dead, read, filtered)


def _typed_event(typed, payload: bytes):
    """``(uuid, eventType, published datetime, prepared)`` when ``typed`` decodes the payload and the
    ordinary path would accept it as one valid event (as :func:`validate` and :func:`skim_batch` judge),
    else None."""
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


def _prepared(prepare, event: dict):
    if prepare is None:
        return None
    try:
        return prepare(event)
    except Exception as exc:  # noqa: BLE001 - handed to the flattener, which dead-letters it
        return exc


def _invalid(exc, payload, candidate, origin, where, context, max_payload_bytes) -> dict:
    return dead_letter(
        stage=STAGE_VALIDATE, error=str(exc), payload=payload, origin=origin, position=where,
        context=context, uuid=_str_or_none(candidate, "uuid"),
        event_type=_str_or_none(candidate, "eventType"), max_payload_bytes=max_payload_bytes,
    )


def _str_or_none(candidate: Any, key: str) -> str | None:
    if isinstance(candidate, dict):
        value = candidate.get(key)
        if isinstance(value, str):
            return value
    return None


def _line(payload: bytes) -> bytes:
    """The payload without its line terminator: the original text as the user wrote it."""
    return payload.rstrip(b"\r\n")

