"""The BigQuery table schema, derived from :mod:`schemas.fields` (the one source of truth).

``python -m schemas.bigquery`` prints it as a ``bq``-style JSON schema; the
committed ``schemas/bigquery.json`` is checked against it by a test. The
table also gets the two Hive partition columns as real columns
(``event_date``, ``event_type``), is DAY-partitioned on ``published`` and
clustered by ``event_type`` and ``actor_id``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.fields import COLUMNS, PARTITION_COLUMNS

BIGQUERY_JSON = Path(__file__).resolve().parent / "bigquery.json"
PARTITION_FIELD = "published"
CLUSTERING_FIELDS = ("event_type", "actor_id")
_TYPES = {"string": "STRING", "bool": "BOOL", "int32": "INT64", "timestamp": "TIMESTAMP", "date": "DATE"}


def bigquery_schema(raw_event: bool = True) -> list[dict]:
    fields = []
    for column in COLUMNS + PARTITION_COLUMNS:
        if column.name == "raw_event" and not raw_event:
            continue
        required = column.required or column.origin == "partition"
        fields.append({"name": column.name, "type": _TYPES[column.type],
                       "mode": "REQUIRED" if required else "NULLABLE", "description": column.description})
    return fields


def render() -> str:
    return json.dumps(bigquery_schema(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
