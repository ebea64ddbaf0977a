"""BigQuery output (``--bigquery_table=PROJECT:DATASET.TABLE``), fed from the lake's committed files.

- The table is created when missing, from :mod:`schemas.bigquery`: DAY
  partitioned on ``published``, clustered by ``event_type`` and
  ``actor_id``, with the documented column descriptions.
- Batch runs and backfills use **load jobs** (free) into a staging table and
  one **MERGE** on ``(uuid, target_index, published)`` that inserts only rows
  the table does not hold yet: the same insert-if-absent rule as the lake,
  atomic, and safe to repeat. Every run merges *all* files of each partition
  it touched (not only the files it wrote), so a run that crashed between the
  lake commit and BigQuery is healed by the rerun, which touches the same
  partitions. (Per-day partition replacement would also be idempotent, but it
  would make BigQuery lose rows that were loaded from elsewhere.)
- Streaming uses **streaming inserts** of each committed window file with
  ``insertId = uuid:target_index``; rows BigQuery rejects become dead-letter
  records carrying BigQuery's error.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import re
import uuid as _uuid

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.bigquery import CLUSTERING_FIELDS, PARTITION_FIELD, bigquery_schema
from sinks.bigquery.settings import BigQueryTarget, parse_table_spec
from storage import fs
from transforms.records import dead_letter

MERGE_KEYS = ("uuid", "target_index", "published")
_ENSURED: set = set()  # tables this process has checked or created


def _schema_fields(raw_event: bool):
    from google.cloud import bigquery

    return [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"], description=f["description"])
            for f in bigquery_schema(raw_event)]


def ensure_table(client, target: BigQueryTarget):
    """Create the dataset and the partitioned, clustered table if missing; return the table.

    An existing table made before a column was added to :mod:`schemas.fields` (``okta_org``) gets
    the missing NULLABLE columns by a schema update (appended, as BigQuery requires); its rows read
    null there.
    """
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    try:
        table = client.get_table(target.table_id)
    except NotFound:
        pass
    else:
        have = {field.name for field in table.schema}
        missing = [f for f in bigquery_schema(target.raw_event) if f["name"] not in have and f["mode"] == "NULLABLE"]
        if missing:
            # DDL rather than a metadata update: one statement, and bqemulator applies it to its storage too.
            columns = ", ".join(f"ADD COLUMN IF NOT EXISTS {f['name']} {f['type']} "
                                f"OPTIONS(description={json.dumps(f['description'])})" for f in missing)
            client.query(f"ALTER TABLE `{target.table_id}` {columns}").result()
            table = client.get_table(target.table_id)
        return table
    project, dataset, _ = parse_table_spec(target.table_spec)
    client.create_dataset(f"{project}.{dataset}", exists_ok=True)
    table = bigquery.Table(target.table_id, schema=_schema_fields(target.raw_event))
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                        field=PARTITION_FIELD)
    table.clustering_fields = list(CLUSTERING_FIELDS)
    table.description = "Okta System Log personal.* events, one row per target (okta-personal-lake)."
    return client.create_table(table, exists_ok=True)


def partition_table(lake: str, partition_path: str, raw_event: bool) -> pa.Table | None:
    """Every row of one lake partition, with the partition columns added, or None when it is empty."""
    values = dict(part.split("=", 1) for part in partition_path.split("/"))
    tables = [fs.read_parquet(path) for path in fs.list_files(fs.join(lake, partition_path, "*.parquet"))]
    if not tables:
        return None
    return with_partition_columns(pa.concat_tables(tables, promote_options="default"), values["event_date"],
                                  values["event_type"], raw_event)


def with_partition_columns(table: pa.Table, event_date: str, event_type: str, raw_event: bool) -> pa.Table:
    if not raw_event and "raw_event" in table.column_names:
        table = table.drop_columns(["raw_event"])
    if "okta_org" not in table.column_names:  # files written before the column existed
        table = table.append_column("okta_org", pa.nulls(table.num_rows, pa.string()))
    day = _dt.date.fromisoformat(event_date)
    table = table.append_column("event_date", pa.array([day] * table.num_rows, pa.date32()))
    return table.append_column("event_type", pa.array([event_type] * table.num_rows, pa.string()))


def merge_partitions(target: BigQueryTarget, lake: str, partitions: list[str], run_id: str,
                     client=None) -> dict:
    """Load the partitions' lake files into a staging table, MERGE the new rows in, drop the staging table."""
    from google.cloud import bigquery

    client = client or target.client()
    ensure_table(client, target)
    tables = [t for t in (partition_table(lake, p, target.raw_event) for p in partitions) if t is not None]
    if not tables:
        return {"table": target.table_id, "rows_loaded": 0, "rows_inserted": 0}
    rows = pa.concat_tables(tables, promote_options="default")
    staging = f"{target.table_id}__staging_{re.sub(r'[^A-Za-z0-9_]', '_', run_id)}_{_uuid.uuid4().hex[:8]}"
    buffer = io.BytesIO()
    pq.write_table(rows, buffer)
    buffer.seek(0)
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET,
                                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                                    schema=_schema_fields(target.raw_event))
    try:
        client.load_table_from_file(buffer, staging, job_config=config).result()
        columns = [f["name"] for f in bigquery_schema(target.raw_event)]
        on = " AND ".join(f"IFNULL(CAST(T.{k} AS STRING), '') = IFNULL(CAST(S.{k} AS STRING), '')"
                          for k in MERGE_KEYS)
        days = sorted({_dt.date.fromisoformat(p.split("/")[0].split("=", 1)[1]) for p in partitions})
        # A range on the partitioning column lets BigQuery read only the touched days.
        on += (f" AND T.{PARTITION_FIELD} >= TIMESTAMP('{days[0]}') AND T.{PARTITION_FIELD} < "
               f"TIMESTAMP('{days[-1] + _dt.timedelta(days=1)}')")
        statement = (f"MERGE `{target.table_id}` T USING `{staging}` S ON {on} "
                     f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
                     f"VALUES ({', '.join('S.' + c for c in columns)})")
        job = client.query(statement)
        job.result()
        inserted = getattr(job, "num_dml_affected_rows", None)
    finally:
        client.delete_table(staging, not_found_ok=True)
    return {"table": target.table_id, "rows_loaded": rows.num_rows, "rows_inserted": inserted}


def _json_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, (_dt.datetime, _dt.date)):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def stream_files(target: BigQueryTarget, lake: str, files: list[tuple[str, str]], client=None,
                 chunk: int = 500) -> tuple[int, list[dict]]:
    """Streaming-insert committed lake files (``(partition path, file name)``); returns (rows sent, dead letters)."""
    client = client or target.client()
    if target.table_id not in _ENSURED:
        ensure_table(client, target)
        _ENSURED.add(target.table_id)
    sent, dead = 0, []
    for partition_path, name in files:
        values = dict(part.split("=", 1) for part in partition_path.split("/"))
        table = with_partition_columns(fs.read_parquet(fs.join(lake, partition_path, name)), values["event_date"],
                                       values["event_type"], target.raw_event)
        rows = [_json_row(r) for r in table.to_pylist()]
        for start in range(0, len(rows), chunk):
            batch = rows[start:start + chunk]
            ids = [f"{r['uuid']}:{'' if r['target_index'] is None else r['target_index']}" for r in batch]
            errors = client.insert_rows_json(target.table_id, batch, row_ids=ids)
            sent += len(batch)
            for error in errors or []:
                row = batch[error["index"]]
                dead.append(dead_letter(stage="bigquery", error=f"BigQuery refused the row: {error['errors']}",
                                        payload=row.get("raw_event") or row, origin=f"bigquery:{target.table_id}",
                                        position=f"{partition_path}/{name}", uuid=row.get("uuid"),
                                        event_type=row.get("event_type")))
    return sent, dead
