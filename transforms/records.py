"""The element types that flow between the transforms.

The pipeline's unit of work is a *batch*: up to ~1000 input records (an Okta
page is 1000 events), never a single event. Per-element overhead in Beam's
Python SDK costs more than parsing and flattening an event, so every
transform here takes and gives batches.

- :class:`RawBatch`: undecoded payloads (JSON Lines lines, whole JSON
  documents, API page bodies, Pub/Sub message bodies) with where they came from.
- :class:`ParsedEvent` / ``list[ParsedEvent]``: validated LogEvents.
- ``(PartitionKey, pyarrow.Table)``: flattened rows of one lake partition.
- dead-letter records: plain ``dict`` (see :func:`dead_letter`).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, NamedTuple


class RawBatch:
    """Undecoded payloads from one source location.

    ``origin`` names the file, page or subscription; ``positions`` gives, per
    payload, where it was inside the origin, in units of ``position_kind``
    (``line`` 12, ``byte`` 4096, ``message`` 1234); dead-letter records say
    ``"line 12"``. ``context`` holds extra fields copied into every
    dead-letter record of the batch (for example a Pub/Sub message id).
    ``org`` is the host of the Okta org the payloads came from (the
    ``okta_org`` column), None when the source does not know it.
    """

    def __init__(self, origin: str, position_kind: str, positions: list, payloads: list,
                 context: dict | None = None, org: str | None = None):
        self.origin = origin
        self.position_kind = position_kind
        self.positions = positions
        self.payloads = payloads
        self.context = context
        self.org = org

    def __setstate__(self, state):  # batches pickled before ``org`` existed
        self.__dict__.update({"org": None, **state})

    def __eq__(self, other):
        return isinstance(other, RawBatch) and self.__dict__ == other.__dict__

    def __repr__(self):
        return f"RawBatch({self.origin!r}, {len(self.payloads)} payloads)"

    def estimated_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)


class EventBatch:
    """Validated events from one batch (``events`` is a list of :class:`ParsedEvent`)."""

    def __init__(self, events: list):
        self.events = events

    def __iter__(self):
        return iter(self.events)

    def __len__(self):
        return len(self.events)

    def __eq__(self, other):
        return isinstance(other, EventBatch) and self.events == other.events

    def __repr__(self):
        return f"EventBatch({len(self.events)} events)"

    def estimated_bytes(self) -> int:
        return 2048 * len(self.events)


class RowBatch:
    """Flattened rows of one lake partition (``table`` follows :mod:`schemas.arrow`)."""

    def __init__(self, partition: PartitionKey, table, events: int):
        self.partition = partition
        self.table = table
        self.events = events

    def __eq__(self, other):
        return (isinstance(other, RowBatch) and self.partition == other.partition
                and self.events == other.events and self.table.equals(other.table))

    def __repr__(self):
        return f"RowBatch({self.partition.path()}, {self.table.num_rows} rows)"

    def estimated_bytes(self) -> int:
        return self.table.nbytes


class RowBatches:
    """Flattened rows of one input batch over several partitions, as one element.

    ``table`` holds the rows grouped by partition; ``parts`` lists
    ``(PartitionKey, offset, rows, events)`` in table order. The batch path
    stages it whole: one Beam element per input batch instead of one per
    partition (a 1000-event batch of a many-type export touches ~700).
    """

    def __init__(self, table, parts: list):
        self.table = table
        self.parts = parts

    def split(self):
        """One :class:`RowBatch` per partition (zero-copy slices)."""
        for key, offset, rows, events in self.parts:
            yield RowBatch(key, self.table.slice(offset, rows), events)

    def __eq__(self, other):
        return (isinstance(other, RowBatches) and self.parts == other.parts
                and self.table.equals(other.table))

    def __repr__(self):
        return f"RowBatches({len(self.parts)} partitions, {self.table.num_rows} rows)"

    def estimated_bytes(self) -> int:
        return self.table.get_total_buffer_size()


class ParsedEvent(NamedTuple):
    """A LogEvent whose envelope (uuid, eventType, published) is valid.

    Kept cheap to build, since most events are filtered out right after:
    the timestamp stays a datetime and the raw text untrimmed until a row
    is actually made.
    """

    event: dict | None  # None when the row values came straight from the text (``prepared``, ``raw``)
    uuid: str
    event_type: str
    published: _dt.datetime  # timezone-aware, UTC
    raw: bytes | None  # the whole payload, when the event was one (JSON Lines)
    origin: str
    position_kind: str
    position: Any
    index: int | None  # place inside an array or envelope, None for a whole payload
    #: The flattener's extraction, done at decode time while the event is still
    #: in the CPU cache (a tuple), or the error it raised; None when not done.
    prepared: Any = None
    org: str | None = None  # the okta_org column: the host of the org the event came from

    @property
    def published_us(self) -> int:
        return (self.published - _EPOCH) // _ONE_US

    @property
    def event_date(self) -> str:
        return self.published.date().isoformat()

    @property
    def where(self) -> str:
        text = f"{self.position_kind} {self.position}"
        return text if self.index is None else f"{text} event {self.index}"

    def raw_text(self) -> bytes | None:
        """The original JSON text, trimmed, or None when the event came out of a container."""
        if self.raw is None:
            return None
        raw = self.raw.strip()
        return raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_ONE_US = _dt.timedelta(microseconds=1)


class PartitionKey(NamedTuple):
    """One Hive partition of the lake: ``event_date=.../event_type=...``."""

    event_date: str
    event_type: str

    def path(self) -> str:
        return f"event_date={self.event_date}/event_type={self.event_type}"


def dead_letter(
    *,
    stage: str,
    error: str,
    payload: Any,
    origin: str = "",
    position: str = "",
    uuid: str | None = None,
    event_type: str | None = None,
    context: dict | None = None,
    max_payload_bytes: int = 16 * 1024 * 1024,
) -> dict:
    """A dead-letter record: why, where, and the original input.

    ``payload`` is the original text when it was text, else its JSON. Bytes
    that are not UTF-8 are kept with ``\\xNN`` escapes (and flagged), and
    payloads over ``max_payload_bytes`` are cut (and flagged), so one hostile
    line cannot produce an unbounded record.
    """
    from transforms.jsonio import dumps_text, payload_text

    record: dict[str, Any] = {
        "error": error,
        "stage": stage,
        "origin": origin,
        "position": position,
    }
    if uuid is not None:
        record["uuid"] = uuid
    if event_type is not None:
        record["event_type"] = event_type
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        text, escaped = payload_text(payload)
    else:
        text, escaped = dumps_text(payload), False
    if escaped:
        record["payload_encoding"] = "not valid UTF-8; invalid bytes escaped as \\xNN"
    encoded_len = len(text.encode("utf-8", "surrogatepass"))
    if encoded_len > max_payload_bytes:
        record["payload_truncated"] = True
        record["payload_bytes"] = encoded_len
        text = text[: max_payload_bytes // 4]
    record["payload"] = text
    if context:
        record.update(context)
    record["dead_lettered_at"] = _dt.datetime.now(_dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    return record
