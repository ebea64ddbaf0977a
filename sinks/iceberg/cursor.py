"""The Okta cursor an Iceberg table records: where a run restarts from the table alone (no Beam here).

A snapshot made by an incremental Okta run (batch) or by a window of the Okta tail records, under
``okta-lake.cursor``, the polling cursor its data covers: JSON (``next_url``, ``org_url``,
``filter``, ...) from a batch run, the next link itself from a window. The cursor and the rows
commit together, so the table alone says where to resume. :func:`recorded_cursor` finds the
newest cursor of one org and filter: by the org in the JSON or, for a bare link, the link's
origin (the client never follows a link off the org's origin) and its ``filter`` parameter.

A run that adds no new row commits no snapshot, so the table's cursor can be older than the one
a ``--state`` file holds; resuming from it only re-reads events the table already has, which the
insert-if-absent commit skips. :func:`keep_ids` names the snapshots that expiry must keep so that
the newest cursor of every org survives maintenance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

SUMMARY_KEY = "okta-lake.cursor"


@dataclass(frozen=True)
class RecordedCursor:
    """The newest cursor of one org in the table, and the snapshot that recorded it."""

    next_url: str
    snapshot_id: int
    timestamp_ms: int
    run_id: str = ""
    caught_up_at: str = ""


def cursor_text(states) -> str | None:
    """The summary value a batch run records: JSON of its cursor, or ``{"orgs": [...]}`` of a many-org run's.

    ``states``: :class:`sources.okta.state.CursorState` objects, or ``(state uri, CursorState)`` pairs.
    """
    cursors = []
    for state in states or ():
        state = state[1] if isinstance(state, tuple) else state
        cursors.append({"next_url": state.next_url, "org_url": state.org_url, "filter": state.filter,
                        "caught_up_at": state.caught_up_at, "updated_at": state.updated_at})
    if not cursors:
        return None
    return json.dumps(cursors[0] if len(cursors) == 1 else {"orgs": cursors})


def parse(text: str | None) -> list[dict]:
    """The cursors of a summary value: ``[{"next_url", "org_url"?, "filter"?, "caught_up_at"?}]``.

    JSON of one cursor (a batch run), ``{"orgs": [...]}`` (a many-org batch run) or a bare link (a window).
    """
    if not text:
        return []
    if not text.lstrip().startswith("{"):
        return [{"next_url": text}]
    try:
        data = json.loads(text)
    except ValueError:
        return []
    cursors = data.get("orgs", [data]) if isinstance(data, dict) else []
    return [c for c in cursors if isinstance(c, dict) and isinstance(c.get("next_url"), str) and c["next_url"]]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.netloc or "").lower()


def _key(cursor: dict) -> tuple:
    """(origin of the org, filter) of a recorded cursor."""
    next_url = cursor["next_url"]
    recorded = cursor["filter"] if "filter" in cursor else parse_qs(urlsplit(next_url).query).get("filter", [""])[0]
    return _origin(cursor.get("org_url") or next_url), recorded or ""


def matches(cursor: dict, org_url: str, filter: str) -> bool:
    """Is this recorded cursor one of ``org_url`` polling with ``filter``?"""
    return _key(cursor) == (_origin(org_url), filter or "")


def _order(snapshot) -> tuple:
    return snapshot.sequence_number or 0, snapshot.timestamp_ms


def _cursors(table):
    for snapshot in table.snapshots():
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        for cursor in parse(summary.get(SUMMARY_KEY)):
            yield snapshot, summary, cursor


def recorded_cursor(table, org_url: str, filter: str) -> RecordedCursor | None:
    """The newest (commit order) cursor the table records for this org and filter, or None."""
    best = None
    for snapshot, summary, cursor in _cursors(table):
        if matches(cursor, org_url, filter) and (best is None or _order(snapshot) > _order(best[0])):
            best = (snapshot, summary, cursor)
    if best is None:
        return None
    snapshot, summary, cursor = best
    return RecordedCursor(cursor["next_url"], snapshot.snapshot_id, snapshot.timestamp_ms,
                          summary.get("okta-lake.run-id", ""), cursor.get("caught_up_at") or "")


def keep_ids(table) -> set[int]:
    """The snapshot ids holding the newest cursor of each org and filter (expiry keeps them)."""
    newest: dict[tuple, object] = {}
    for snapshot, _, cursor in _cursors(table):
        key = _key(cursor)
        if key not in newest or _order(snapshot) > _order(newest[key]):
            newest[key] = snapshot
    return {s.snapshot_id for s in newest.values()}


def table_cursor(target, org_url: str, filter: str) -> RecordedCursor | None:
    """The newest cursor the table (an :class:`sinks.iceberg.catalog.IcebergTarget`) records for the org, or
    None when the table or such a snapshot does not exist yet."""
    from pyiceberg.exceptions import NoSuchTableError

    from sinks.iceberg.table import connect

    try:
        table = connect(target).load_table(target.table)
    except NoSuchTableError:
        return None
    return recorded_cursor(table, org_url, filter)
