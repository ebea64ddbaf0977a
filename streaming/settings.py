"""What a streaming job needs, as plain frozen values (they are pickled into the Beam graph).

:class:`WindowSettings` is what every streaming path shares: how a window
is cut, deduped and committed. The Okta tail and the Pub/Sub loop add their
own fields around it (:class:`TailSettings`, :class:`PubSubSettings`) rather
than repeat its fields.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WindowSettings:
    """How a stream's windows are built and committed (the window buffer and the commit step read these)."""

    length: float  # seconds of processing time per window (--window)
    dedupe_horizon: float  # seconds a uuid is remembered (--dedupe_horizon)
    lake: str
    dead_letter: str
    job: str  # names the window's files: part-w<start>-<job>-...
    event_types: str
    raw_event: bool
    compression: str
    max_payload_bytes: int
    quiet: bool = False
    bigquery: Any = None  # sinks.bigquery.client.BigQueryTarget or None
    okta_org: str | None = None  # the okta_org of events whose batch names none (--okta_org)
    iceberg: Any = None  # sinks.iceberg.catalog.IcebergTarget or None: plain settings, the catalog opens per process
    iceberg_keep_snapshots: int = 60  # --iceberg_keep_snapshots


@dataclass(frozen=True)
class TailSettings:
    """The Okta tail: where its cursor lives, how far back it starts, how often it polls; plus its windows."""

    state_uri: str | None  # None: the Iceberg table (window.iceberg) holds the cursor
    lookback: _dt.timedelta
    poll_interval: float  # seconds
    window: WindowSettings


@dataclass(frozen=True)
class PubSubSettings:
    """The local Pub/Sub loop: the subscription it pulls; plus its windows."""

    subscription: str
    window: WindowSettings
