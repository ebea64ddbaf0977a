"""The same flattening as one DuckDB statement: ``COPY (SELECT ... read_ndjson_objects ...) TO ... PARTITION_BY``.

    python -m bench.duckdb_copy INPUT OUTPUT [PREFIX]

Reads the JSON Lines file with ``read_ndjson_objects`` (bad lines skipped, not
dead-lettered), keeps the types starting with PREFIX (default ``personal.``;
"" keeps all), keeps the first copy of a uuid per partition, makes one row per
``target[]`` entry (``unnest``) with the columns of :mod:`schemas.fields`, and
writes zstd Parquet partitioned by ``event_date, event_type``. It does not
type-check fields or dead-letter anything: a yardstick for speed, not a
replacement. DuckDB uses every core (``threads`` = CPU count).
"""

from __future__ import annotations

import json
import sys

from schemas.fields import COLUMNS


def _json_path(keys: tuple[str, ...]) -> str:
    return "$." + ".".join(keys)


def statement(input_path: str, output_dir: str, prefix: str = "personal.") -> str:
    selects = []
    for c in COLUMNS:
        if c.name == "uuid":
            selects.append("uuid")
        elif c.name == "published":
            selects.append("published")
        elif c.name == "target_index":
            selects.append("CASE WHEN n > 0 THEN i END::INTEGER AS target_index")
        elif c.name == "raw_event":
            selects.append("j::VARCHAR AS raw_event")
        else:
            source = "tl[i + 1]" if c.origin == "target" else "j"
            if c.type == "bool":
                selects.append(f"TRY_CAST(json_extract({source}, '{_json_path(c.keys)}') AS BOOLEAN) AS {c.name}")
            else:
                selects.append(f"json_extract_string({source}, '{_json_path(c.keys)}') AS {c.name}")
    where = f"starts_with(event_type, '{prefix}')" if prefix else "event_type IS NOT NULL"
    return f"""
COPY (
  WITH events AS (
    SELECT json AS j, json_extract_string(json, '$.uuid') AS uuid,
           json_extract_string(json, '$.eventType') AS event_type,
           TRY_CAST(json_extract_string(json, '$.published') AS TIMESTAMPTZ) AS published
    FROM read_ndjson_objects('{input_path}', ignore_errors = true)
  ),
  kept AS (
    SELECT *, strftime(published AT TIME ZONE 'UTC', '%Y-%m-%d') AS event_date,
           CASE WHEN json_type(j, '$.target') = 'ARRAY' THEN json_extract(j, '$.target[*]') END AS tl
    FROM events
    WHERE {where} AND uuid IS NOT NULL AND published IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY event_date, event_type, uuid) = 1
  ),
  rows AS (
    SELECT *, coalesce(len(tl), 0) AS n, unnest(range(greatest(coalesce(len(tl), 0), 1))) AS i FROM kept
  )
  SELECT {", ".join(selects)}, event_date, event_type FROM rows
) TO '{output_dir}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date, event_type), OVERWRITE_OR_IGNORE)
"""


def run(input_path: str, output_dir: str, prefix: str = "personal.") -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(statement(input_path, output_dir, prefix))
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{output_dir}/**/*.parquet')").fetchone()[0]
    return {"rows": rows}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "personal.")))
