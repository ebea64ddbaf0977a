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

One bad event costs that event only: an array that orjson refuses but that is
whole (:func:`transforms.jsonio.loads_or_elements`) is judged element by
element, each exactly as the same text on a line of its own would be (its own
text as ``raw`` and in its dead letter, ``event K`` in its position).

The rules are :mod:`transforms.envelope`'s. Two shortcuts (:mod:`transforms.shortcuts`) spare
most payloads this full path and change no verdict: the envelope skim judges the events the
selection does not keep without building them, and the typed decoder (``typed``, a
:class:`transforms.shortcuts.LineDecoder`) decodes a kept whole-payload event straight into its
row values; anything they doubt takes the full path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from transforms import jsonio
from transforms.envelope import InvalidEvent, unwrap, validate
from transforms.records import ParsedEvent, RawBatch, dead_letter
from transforms.shortcuts import skim_batch, typed_event

STAGE_DECODE = "decode"
STAGE_VALIDATE = "validate"


def _selects_everything(selection) -> bool:
    return "" in getattr(selection, "prefixes", ())


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

    ``skim`` judges unselected events with :func:`transforms.shortcuts.skim_batch` before any
    full decode (same counts, same dead letters; ``False`` only for tests
    that prove it).

    ``typed`` (a :class:`transforms.shortcuts.LineDecoder`, given with ``prepare``) decodes a
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
    loads_or_elements = jsonio.loads_or_elements
    append = events.append
    do_skim = skim and selection is not None and not _selects_everything(selection)
    items = zip(batch.positions, batch.payloads)
    if do_skim:
        filtered, items = skim_batch(items, selection)
        read = filtered
    for pos, payload in items:
        if typed is not None:
            found = typed_event(typed, payload)
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
            document, elements = loads_or_elements(payload)
        except jsonio.NotJson as exc:
            read += 1
            dead.append(_not_json(exc, _line(payload), origin, f"{kind} {pos}", context, max_payload_bytes))
            continue
        if elements is not None:  # a whole array orjson refuses: one bad event costs that event only
            judged = _decode_elements(elements, batch, pos, context, max_payload_bytes, selection, prepare,
                                      skim and selection is not None, org, typed, events, dead)
            read += judged[0]
            filtered += judged[1]
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


def _decode_elements(elements: list[bytes], batch: RawBatch, pos, context, max_payload_bytes, selection, prepare,
                     skim: bool, org, typed, events: list, dead: list) -> tuple[int, int]:
    """Judge each element of an array orjson refused as a JSON Lines line is judged (skim, typed decoder,
    decode, validate, selection), each kept event with its own text (``raw``) and place (``index``); append
    to ``events`` and ``dead``; return ``(read, filtered)``.

    An element is one event here, never a container to unwrap, as in an array decoded whole.
    """
    origin, kind = batch.origin, batch.position_kind
    read = filtered = 0
    items = list(enumerate(elements))
    if skim and not _selects_everything(selection):
        filtered, items = skim_batch(items, selection)
        read = filtered
    for index, text in items:
        read += 1
        where = f"{kind} {pos} event {index}"
        found = typed_event(typed, text) if typed is not None else None
        if found is not None:
            uuid, event_type, published, prepared = found
            if selection is not None and not selection(event_type):
                filtered += 1
                continue
            events.append(ParsedEvent(None, uuid, event_type, published, text, origin, kind, pos, index, prepared,
                                      org))
            continue
        try:
            document = jsonio.loads(text)
        except jsonio.NotJson as exc:
            dead.append(_not_json(exc, text, origin, where, context, max_payload_bytes))
            continue
        try:
            uuid, event_type, published = validate(document)
        except InvalidEvent as exc:
            dead.append(_invalid(exc, text, document, origin, where, context, max_payload_bytes))
            continue
        if selection is not None and not selection(event_type):
            filtered += 1
            continue
        events.append(ParsedEvent(document, uuid, event_type, published, text, origin, kind, pos, index,
                                  _prepared(prepare, document), org))
    return read, filtered


def _not_json(exc, payload: bytes, origin, where, context, max_payload_bytes) -> dict:
    """A payload no decoder accepts; its uuid and eventType when they can still be read (a whole object)."""
    found = jsonio.envelope_strings(payload)
    return dead_letter(
        stage=STAGE_DECODE, error=str(exc), payload=payload, origin=origin, position=where, context=context,
        uuid=found.get("uuid"), event_type=found.get("eventType") if "uuid" in found else None,
        max_payload_bytes=max_payload_bytes,
    )


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
