"""The Arrow / Parquet schema, derived from :mod:`schemas.fields`."""

from __future__ import annotations

import pyarrow as pa

from schemas.fields import COLUMNS, PARTITION_COLUMNS, Column

ARROW_TYPES = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def arrow_field(column: Column) -> pa.Field:
    return pa.field(
        column.name,
        ARROW_TYPES[column.type],
        nullable=not column.required,
        metadata={"description": column.description, "json_path": column.path},
    )


def file_schema(raw_event: bool = True) -> pa.Schema:
    """Schema of every Parquet file in the lake (partition keys excluded)."""
    return pa.schema(
        [arrow_field(c) for c in COLUMNS if raw_event or c.name != "raw_event"]
    )


def partition_schema() -> pa.Schema:
    """Schema of the Hive partition keys, for readers (``pyarrow.dataset``)."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in PARTITION_COLUMNS])


FILE_SCHEMA = file_schema(raw_event=True)
FILE_SCHEMA_NO_RAW = file_schema(raw_event=False)
