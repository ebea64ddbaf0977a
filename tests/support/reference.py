"""A deliberately plain reference flattening, written from the output contract.

One event in, its expected rows (or the reason it must be dead-lettered)
out. Slow and obvious on purpose: tests compare the pipeline's lake to it.
"""

from __future__ import annotations

import datetime as dt
import json

from schemas.fields import COLUMNS

UTC = dt.timezone.utc


class Reject(Exception):
    pass


def _published(value):
    if not isinstance(value, str) or len(value) < 19 or value[10] not in "Tt ":
        raise Reject("published")
    if value[4] != "-" or value[7] != "-" or value[13] != ":":
        raise Reject("published")
    try:
        moment = dt.datetime.fromisoformat(value[:10] + "T" + value[11:])
    except ValueError:
        raise Reject("published") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _dig(obj, keys, kind):
    for key in keys[:-1]:
        obj = obj.get(key)
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise Reject(key)
    value = obj.get(keys[-1])
    if value is None:
        return None
    if kind == "bool" and type(value) is not bool:
        raise Reject(keys[-1])
    if kind == "string" and type(value) is not str:
        if type(value) in (int, float, bool):  # kept as its JSON text (docs/reference/schema.md: "values that bend")
            return json.dumps(value)
        raise Reject(keys[-1])
    return value


def is_valid_envelope(event) -> bool:
    if not isinstance(event, dict):
        return False
    if not isinstance(event.get("uuid"), str) or not event["uuid"].strip():
        return False
    if not isinstance(event.get("eventType"), str) or not event["eventType"]:
        return False
    try:
        _published(event.get("published"))
    except Reject:
        return False
    return True


def expected_rows(event: dict, raw_event: str | None = None, org: str | None = None) -> list[dict]:
    """The rows an event must produce (partition columns included), or raise Reject."""
    if not is_valid_envelope(event):
        raise Reject("envelope")
    published = _published(event["published"])
    targets = event.get("target")
    if targets is None or targets == []:
        entries = [(None, {})]
    elif not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise Reject("target")
    else:
        entries = list(enumerate(targets))
    rows = []
    for index, entry in entries:
        row = {}
        for column in COLUMNS:
            if column.name == "uuid":
                row["uuid"] = event["uuid"]
            elif column.name == "published":
                row["published"] = published
            elif column.name == "target_index":
                row["target_index"] = index
            elif column.name == "raw_event":
                row["raw_event"] = raw_event if raw_event is not None else json.dumps(event)
            elif column.name == "okta_org":
                row["okta_org"] = org
            elif column.origin == "target":
                row[column.name] = _dig(entry, column.keys, column.type) if entry else None
            else:
                row[column.name] = _dig(event, column.keys, column.type)
        row["event_date"] = published.date().isoformat()
        row["event_type"] = event["eventType"]
        rows.append(row)
    return rows
