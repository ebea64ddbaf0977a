"""How events are decoded, selected and flattened: one settings object for every path that does it.

:class:`DecodeSettings` is built once per run (:mod:`pipeline.config`) and handed, as it is,
to the Beam graph (:class:`transforms.beam.PersonalEventsToRows`), to the local decode
processes (:mod:`sources.files.pool` sends it to each one) and to the streaming windows
(:class:`streaming.window_buffer.WindowBuffer`), so the three cannot drift apart.
It is a plain frozen value: it pickles into a Beam graph or down a pipe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from transforms.selection import DEFAULT_EVENT_TYPES, EventTypeSelection

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
DEFAULT_BATCH_SIZE = 1000
#: Lines are handed on in batches of at most this many bytes (or ``batch_size`` lines).
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class DecodeSettings:
    """What to keep and how to flatten it (``--event_types``, ``--raw_event``, ...)."""

    event_types: str = DEFAULT_EVENT_TYPES
    raw_event: bool = True  # the raw_event column holds each event's original JSON
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES  # dead-letter payloads are cut past this
    org: str | None = None  # the okta_org of events whose batch names none (--okta_org)
    batch_size: int = DEFAULT_BATCH_SIZE  # events (lines) per pipeline element
    batch_bytes: int = DEFAULT_BATCH_BYTES  # and at most this many bytes of them

    def __post_init__(self):
        EventTypeSelection.parse(self.event_types)  # a bad selection fails where the settings are made

    @property
    def selection(self) -> EventTypeSelection:
        return EventTypeSelection.parse(self.event_types)

    def for_org(self, org: str | None, event_types: str | None = None) -> DecodeSettings:
        """The same settings for one org's events (a many-org run keeps per-org event types)."""
        return replace(self, org=org, event_types=event_types or self.event_types)
