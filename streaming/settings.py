"""What a streaming job needs: its flags, their checks, and plain frozen values (pickled into the Beam graph).

:class:`StreamSettings` is the parsed ``--window``, ``--poll_interval``, ``--dedupe_horizon`` and
``--stop_after`` (each parsed once). :class:`WindowSettings` is what every streaming path shares:
how a window is cut, decoded, deduped and committed; it holds the lake's, the decoder's, BigQuery's
and Iceberg's own settings rather than copies of their fields. The Okta tail and the Pub/Sub loop
add their own fields around it (:class:`TailSettings`, :class:`PubSubSettings`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from common.flags import duration_seconds
from sinks.bigquery.settings import BigQueryTarget
from sinks.iceberg.settings import IcebergTarget
from sinks.lake.settings import LakeSettings
from transforms.settings import DecodeSettings


@dataclass(frozen=True)
class StreamSettings:
    """The streaming flags, parsed: seconds each."""

    window: float  # processing time per window (--window)
    poll_interval: float | None  # the Okta tail's wait once caught up (--poll_interval); None: auto
    dedupe_horizon: float  # how long a uuid is remembered (--dedupe_horizon)
    stop_after: float | None = None  # stop the run after this long (--stop_after); None: run until stopped


@dataclass(frozen=True)
class WindowSettings:
    """How a stream's windows are built and committed (the window buffer and the commit step read these)."""

    length: float  # seconds of processing time per window (--window)
    dedupe_horizon: float  # seconds a uuid is remembered (--dedupe_horizon)
    lake: LakeSettings
    decode: DecodeSettings
    job: str  # names the window's files: part-w<start>-<job>-...
    quiet: bool = False
    bigquery: BigQueryTarget | None = None
    iceberg: IcebergTarget | None = None  # plain settings: the catalog opens per process
    iceberg_keep_snapshots: int = 60  # --iceberg_keep_snapshots


@dataclass(frozen=True)
class TailSettings:
    """The Okta tail: where its cursor lives, how far back it starts, how often it polls; plus its windows."""

    state_uri: str | None  # None: the Iceberg table (window.iceberg) holds the cursor
    lookback: _dt.timedelta
    poll_interval: float | None  # seconds between polls once caught up; None: from the org's limit (auto)
    window: WindowSettings


@dataclass(frozen=True)
class PubSubSettings:
    """The local Pub/Sub loop: the subscription it pulls; plus its windows."""

    subscription: str
    window: WindowSettings


def add_flags(parser) -> None:
    stream = parser.add_argument_group("Streaming (--streaming with --source=okta or --source=pubsub)")
    stream.add_argument(
        "--window", default="10s",
        help="Length of the lake's write windows in streaming (e.g. 10s, 5m): rows are committed at the latest "
             "when the window they were read in ends, as files named after it (the Okta tail commits sooner: "
             "after every poll that caught up). Longer windows make fewer files and staler rows.")
    stream.add_argument(
        "--poll_interval", default="auto",
        help="How long the Okta tail waits between polls once caught up (a short page). auto: every 6 s or, on "
             "an org whose rate limit is low, as often as keeps the idle tail under half of it (6.7 s at 20 "
             "requests/min); a backlog is read without waiting, within --okta_rate_share.")
    stream.add_argument(
        "--dedupe_horizon", default="24h",
        help="How long a stream remembers the uuids it wrote, to drop repeats early; repeats older than "
             "that are still dropped when their window commits (insert-if-absent).")
    stream.add_argument(
        "--stop_after", default=None,
        help="Stop a streaming run after this long (e.g. 2m), for demos and tests; uncommitted rows are "
             "read again by the next run. Default: run until stopped.")


def resolve(options, problems: list[str], *, streaming: bool) -> StreamSettings | None:
    """The parsed streaming flags of a ``--streaming`` run (None otherwise, or with problems appended)."""
    if not streaming:
        return None
    found = len(problems)
    names = ("window", "dedupe_horizon", "stop_after") + (() if options.poll_interval == "auto" else ("poll_interval",))
    seconds = {name: duration_seconds(options, name, problems, at_least=1) for name in names}
    if len(problems) > found:
        return None
    if seconds["dedupe_horizon"] < seconds["window"]:
        problems.append("--dedupe_horizon must be at least one --window")
        return None
    return StreamSettings(seconds["window"], seconds.get("poll_interval"), seconds["dedupe_horizon"],
                          seconds["stop_after"])
