"""The one source of truth for the output schema.

Every column of the lake (and later of the BigQuery table) is declared here,
once, as a dotted JSON path in the Okta LogEvent plus a type and a
description. Column names are derived mechanically from the path
(``client.userAgent.rawUserAgent`` -> ``client_user_agent_raw_user_agent``,
``target[].id`` -> ``target_id``), and the Arrow schema, the BigQuery schema
and the README's column table are all generated from :data:`COLUMNS`.

Adding a documented field is one line in :data:`DOCUMENTED_FIELDS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

FieldType = Literal["string", "bool", "int32", "timestamp", "date"]

#: Where a column's value comes from.
#:  - ``event``: a path inside the LogEvent object (one value per event)
#:  - ``target``: a path inside one ``target[]`` entry (one value per row)
#:  - ``derived``: computed by the flattener (``target_index``, ``raw_event``, ``okta_org``)
#:  - ``partition``: lives in the Hive path only, never inside the files
Origin = Literal["event", "target", "derived", "partition"]


def column_name(path: str) -> str:
    """Dotted path -> snake_case column name (the mechanical naming rule).

    >>> column_name("client.userAgent.rawUserAgent")
    'client_user_agent_raw_user_agent'
    >>> column_name("target[].alternateId")
    'target_alternate_id'
    """
    parts = path.replace("[]", "").split(".")
    return "_".join(re.sub(r"(?<!^)(?=[A-Z])", "_", p).lower() for p in parts)


@dataclass(frozen=True)
class Column:
    """One output column."""

    path: str
    type: FieldType
    description: str
    origin: Origin = "event"
    required: bool = False
    name_override: str | None = None

    @cached_property
    def name(self) -> str:
        return self.name_override or column_name(self.path)

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The JSON keys to walk, relative to the event or to one target entry."""
        path = self.path
        if self.origin == "target":
            path = path.split("[].", 1)[1]
        return tuple(path.split("."))


def _event(path: str, type_: FieldType, description: str, required: bool = False) -> Column:
    return Column(path, type_, description, "event", required)


def _target(path: str, type_: FieldType, description: str) -> Column:
    assert path.startswith("target[]."), path
    return Column(path, type_, description, "target")


#: The LogEvent envelope: present on every event type.
ENVELOPE_FIELDS: tuple[Column, ...] = (
    _event("uuid", "string", "Unique identifier of the event (Okta's dedupe key).", required=True),
    _event("published", "timestamp", "When the event was published, UTC, microseconds.", required=True),
    _event("version", "string", "Versioning indicator of the LogEvent format."),
    _event("severity", "string", "DEBUG, INFO, WARN or ERROR."),
    _event("displayMessage", "string", "Human-readable description of the event."),
    _event("legacyEventType", "string", "The event type in Okta's older Events API, when there is one."),
)

TARGET_INDEX = Column(
    "target_index",
    "int32",
    "Position of this row's entry in target[] (0-based); null when the event has no targets. "
    "Order carries no meaning in Okta: look targets up by target_type.",
    origin="derived",
)

#: The fields Okta documents for the personal.* event types, in output order.
DOCUMENTED_FIELDS: tuple[Column, ...] = (
    _event("actor.id", "string", "Unique ID of the actor performing the event."),
    _event("actor.type", "string", "Type of actor: User, Client, System, PublicClientApp, etc."),
    _event("actor.alternateId", "string", "Username or email of the actor."),
    _event("actor.displayName", "string", "Display name of the actor."),
    _target("target[].id", "string", "ID of each target object (user, group, application, ...)."),
    _target("target[].type", "string", "Type of each target object."),
    _target("target[].alternateId", "string", "Username or email of each target object."),
    _event("outcome.result", "string",
           "Result: SUCCESS, FAILURE, SKIPPED, ALLOW, DENY, CHALLENGE, UNKNOWN."),
    _event("outcome.reason", "string", "Human-readable reason for the outcome."),
    _event("client.ipAddress", "string", "IP address of the client."),
    _event("client.userAgent.rawUserAgent", "string", "Raw user agent string."),
    _event("client.geographicalContext.country", "string", "Country of origin for the request."),
    _event("securityContext.isProxy", "bool",
           "Whether the request came through a proxy or anonymizer."),
    _event("authenticationContext.externalSessionId", "string",
           "Session ID correlating events in one user session."),
    _event("transaction.id", "string",
           "Transaction ID correlating multiple log entries for one action."),
)

RAW_EVENT = Column(
    "raw_event",
    "string",
    "The event's original JSON text (JSON Lines input, or an array read event by event because the strict "
    "decoder refused one of its events) or its compact re-serialisation (other events taken out of an array "
    "or envelope), so no field is ever lost. "
    "Absent when the pipeline runs with --raw_event=false.",
    origin="derived",
)

OKTA_ORG = Column(
    "okta_org",
    "string",
    "Host of the Okta org the event came from (e.g. acme.okta.com): from the org URL for API sources, "
    "from --okta_org or the message's okta_org attribute for files and Pub/Sub; null when unknown "
    "(and in files written before the column existed).",
    origin="derived",
)

#: Hive partition keys: in the path (``event_date=.../event_type=...``), never in the files.
PARTITION_COLUMNS: tuple[Column, ...] = (
    Column("event_date", "date", "UTC date of published (Hive partition key, from the path).", "partition"),
    Column("event_type", "string", "The eventType, e.g. personal.user.app_migration.export "
           "(Hive partition key, from the path).", "partition"),
)

#: Every column stored inside the Parquet files, in file order. A new column goes last: BigQuery
#: and Iceberg append added columns at the end, so the table order stays the file order, and
#: positional readers of older files keep finding every earlier column where it was.
COLUMNS: tuple[Column, ...] = ENVELOPE_FIELDS + (TARGET_INDEX,) + DOCUMENTED_FIELDS + (RAW_EVENT, OKTA_ORG)

EVENT_COLUMNS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.origin == "event")
TARGET_COLUMNS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.origin == "target")

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
