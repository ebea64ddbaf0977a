"""How events are decoded, selected and flattened: one settings object for every path that does it.

:class:`DecodeSettings` is built once per run (:mod:`pipeline.config`) and handed, as it is,
to the Beam graph (:class:`transforms.beam.PersonalEventsToRows`), to the local decode
processes (:mod:`sources.files.pool` sends it to each one) and to the streaming windows
(:class:`streaming.window_buffer.WindowBuffer`), so the three cannot drift apart.
It is a plain frozen value: it pickles into a Beam graph or down a pipe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    drift: bool = True  # watch kept events for schema drift (transforms/drift.py)
    drift_cpu_share: float = 0.02  # the watch's CPU budget: a share of its process's (1: watch every kept event)

    def __post_init__(self):
        EventTypeSelection.parse(self.event_types)  # a bad selection fails where the settings are made

    @property
    def selection(self) -> EventTypeSelection:
        return EventTypeSelection.parse(self.event_types)


def add_flags(parser) -> None:
    """The decoding group: what is kept, what a row holds, how batches are cut."""
    from common.flags import bool_flag

    group = parser.add_argument_group("Decoding (every source)")
    group.add_argument(
        "--event_types", default=DEFAULT_EVENT_TYPES,
        help="Comma-separated event types to keep; a pattern ending in * is a prefix "
             "(default: personal.*, so future personal types flow in).")
    bool_flag(group, "--raw_event", True,
              "Store each event's original JSON in the raw_event column (default true).")
    group.add_argument(
        "--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
        help="Events per pipeline element (default 1000, an Okta page).")
    group.add_argument(
        "--max_dead_letter_payload_bytes", type=int, default=DEFAULT_MAX_PAYLOAD_BYTES,
        help="Cut dead-letter payloads longer than this many bytes (flagged in the record; "
             "default 16 MiB).")
    bool_flag(group, "--drift", True,
              "Watch kept events for schema drift: undocumented JSON paths, event types kept for the first time in "
              "the lake, documented fields of another JSON type; in the summary, the manifest, the metrics and "
              "okta-personal-lake report (default true; false spares its small cost).")
    group.add_argument(
        "--drift_cpu_share", type=float, default=0.02,
        help="The most of its process's CPU time the drift watch spends (default 0.02); past it, batches are "
             "counted per event type but not watched, and the summary says how many. 1 watches every kept event.")
    group.add_argument(
        "--okta_org", default=None,
        help="Host of the Okta org the events of --source=file or pubsub came from, e.g. acme.okta.com: "
             "fills the okta_org column (a Pub/Sub message's okta_org attribute wins). API sources "
             "take it from the org URL. Default: null.")


ORG_HOST = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?")


def resolve(options, problems: list[str], *, source: str) -> DecodeSettings | None:
    """The run's :class:`DecodeSettings`, or None with each problem appended to ``problems``."""
    found = len(problems)
    try:
        EventTypeSelection.parse(options.event_types)
    except ValueError as exc:
        problems.append(str(exc))
    if not 1 <= options.batch_size <= 100_000:
        problems.append(f"--batch_size must be between 1 and 100000, got {options.batch_size}")
    if options.max_dead_letter_payload_bytes < 1024:
        problems.append("--max_dead_letter_payload_bytes must be at least 1024")
    if not 0 < options.drift_cpu_share <= 1:
        problems.append(f"--drift_cpu_share must be more than 0 and at most 1, got {options.drift_cpu_share:g}")
    if options.okta_org is not None:
        if source == "okta":
            problems.append("--okta_org is for --source=file or pubsub; the API sources take the org from its URL")
        elif not ORG_HOST.fullmatch(options.okta_org):
            problems.append(f"--okta_org must be the org's host name, e.g. acme.okta.com, not {options.okta_org!r}")
    if len(problems) > found:
        return None
    return DecodeSettings(options.event_types, options.raw_event, options.max_dead_letter_payload_bytes,
                          options.okta_org, options.batch_size, drift=options.drift,
                          drift_cpu_share=options.drift_cpu_share)
