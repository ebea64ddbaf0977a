"""The lake as an Apache Iceberg table: schema, partition spec, sort order, opening it (no Beam here).

Derived from :mod:`schemas.fields` like the Arrow and BigQuery schemas: every
column of :data:`~schemas.fields.COLUMNS` plus ``event_type`` (a real column here, so it can
be an identity partition; ``event_date`` is not needed: Iceberg partitions by
``day(published)`` hidden), with the descriptions as column docs. Field ids are given in
column order when the table is created; afterwards columns are matched by name, so adding
a documented field adds one optional column with a new id (:func:`open_table` evolves the
table) and never renumbers the others. Partition spec ``day(published)``,
``identity(event_type)``; sort order ``published, uuid, target_index`` (the writer really
sorts each file so); zstd Parquet.

Rows go in through the insert-if-absent commit, :mod:`sinks.iceberg.commit`; its snapshot
summaries carry our entries under :data:`SUMMARY_PREFIX` (:func:`snapshot_summaries`).
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from schemas.fields import COLUMNS, PARTITION_COLUMNS, Column
from sinks.iceberg.catalog import IcebergConfigError, load_catalog
from sinks.iceberg.settings import IcebergTarget

SORT = ("published", "uuid", "target_index")
EVENT_TYPE = dataclasses.replace(
    next(c for c in PARTITION_COLUMNS if c.name == "event_type"),
    description="The eventType, e.g. personal.user.app_migration.export (identity partition).")
SUMMARY_PREFIX = "okta-lake."
EVOLVE_ATTEMPTS = 5
TABLE_PROPERTIES = {
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    "write.target-file-size-bytes": str(128 * 1024 * 1024),
    "format-version": "2",
    "commit.manifest-merge.enabled": "true",
    # Merge once 10 manifests pile up (default 100): a streaming table then keeps ~10 manifests, and a
    # window's commit reads ~10, not up to 100 (bench/RESULTS.md: about half the commit time).
    "commit.manifest.min-count-to-merge": "10",
    # Merged manifests stay small (default 8 MB): a merge then rewrites only the newest manifests, and the key
    # check's manifest cache (sinks.iceberg.keys) keeps the older ones (bench/RESULTS.md).
    "commit.manifest.target-size-bytes": str(256 * 1024),
    # The metadata lists this many previous metadata files (default 100); pyiceberg deep-copies the whole
    # metadata several times per commit. Older files are removed by `okta-personal-lake maintain` (orphans).
    "write.metadata.previous-versions-max": "10",
}


def table_columns() -> tuple[Column, ...]:
    """The Iceberg table's columns, in order: the file columns, then ``event_type``."""
    return COLUMNS + (EVENT_TYPE,)


def _iceberg_type(column: Column):
    from pyiceberg import types as t

    return {"string": t.StringType(), "bool": t.BooleanType(), "int32": t.IntegerType(),
            "timestamp": t.TimestamptzType(), "date": t.DateType()}[column.type]


def iceberg_schema(columns: tuple[Column, ...] | None = None):
    """The table schema for these file columns (default: all) plus ``event_type``.

    Field ids 1.. in column order; used as-is only when the table is created.
    """
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    columns = table_columns() if columns is None else columns + (EVENT_TYPE,)
    fields = [NestedField(field_id=i, name=c.name, field_type=_iceberg_type(c),
                          required=c.required or c.origin == "partition", doc=c.description)
              for i, c in enumerate(columns, start=1)]
    return Schema(*fields)


def partition_spec(schema):
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform, IdentityTransform

    return PartitionSpec(
        PartitionField(source_id=schema.find_field("published").field_id, field_id=1000,
                       transform=DayTransform(), name="published_day"),
        PartitionField(source_id=schema.find_field("event_type").field_id, field_id=1001,
                       transform=IdentityTransform(), name="event_type"),
    )


def sort_order(schema):
    from pyiceberg.table.sorting import SortField, SortOrder
    from pyiceberg.transforms import IdentityTransform

    return SortOrder(*[SortField(source_id=schema.find_field(name).field_id, transform=IdentityTransform())
                       for name in SORT])


def _conflicts(table_schema, wanted) -> list[str]:
    """Columns whose type or nullability in the table cannot take what the pipeline writes."""
    out = []
    for field in wanted.fields:
        try:
            have = table_schema.find_field(field.name)
        except ValueError:
            if field.required:
                out.append(f"column {field.name} is missing (and required)")
            continue
        if have.field_type != field.field_type:
            out.append(f"column {field.name} is {have.field_type}, the pipeline writes {field.field_type}")
        elif have.required and not field.required:
            out.append(f"column {field.name} is required in the table but optional in the pipeline")
    return out


def open_table(catalog, target: IcebergTarget, columns: tuple[Column, ...] | None = None):
    """Load the table, creating it (with its namespace) when missing, adding any new documented column.

    Runs starting together on a new table, or on a table missing a newly documented column, all succeed:
    see :func:`_create_table` and :func:`_add_missing_columns`.
    """
    from pyiceberg.exceptions import NoSuchTableError

    wanted = iceberg_schema(columns)
    try:
        table = catalog.load_table(target.table)
    except NoSuchTableError:
        table = _create_table(catalog, target, wanted)
    conflicts = _conflicts(table.schema(), wanted)
    if conflicts:
        raise IcebergConfigError(f"the Iceberg table {target.table} does not fit the pipeline's schema: "
                                 + "; ".join(conflicts))
    return _add_missing_columns(catalog, target, table, wanted)


def _create_table(catalog, target: IcebergTarget, wanted):
    """Create the namespace and the table. When another run creates either at the same moment, the second
    insert into the catalog fails on its key (pyiceberg's ``...AlreadyExistsError``, or the SQL catalog's
    integrity error for a namespace); what is then checked is whether it exists, not the error's text."""
    from pyiceberg.exceptions import TableAlreadyExistsError

    namespace, _ = target.identifier
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:  # noqa: BLE001 - fine if another run created it a moment ago
        if not catalog.namespace_exists(namespace):
            raise
    try:
        return catalog.create_table(target.table, schema=wanted, partition_spec=partition_spec(wanted),
                                    sort_order=sort_order(wanted), properties=TABLE_PROPERTIES)
    except TableAlreadyExistsError:  # another run created it a moment ago
        return catalog.load_table(target.table)


def _add_missing_columns(catalog, target: IcebergTarget, table, wanted, attempts: int = EVOLVE_ATTEMPTS):
    """Add the documented columns the table lacks, matched by name: existing columns keep their ids, new ones
    get fresh ids, all optional. A schema change committed by another run meanwhile fails the commit's
    schema requirement; the table is then loaded again and looked at anew (``attempts`` times)."""
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(1, attempts + 1):
        have = {f.name for f in table.schema().fields}
        missing = [f for f in wanted.fields if f.name not in have]
        if not missing:
            return table
        try:
            with table.update_schema() as update:
                for field in missing:
                    update.add_column(field.name, field.field_type, doc=field.doc)
        except CommitFailedException:
            if attempt == attempts:
                raise
        table = catalog.load_table(target.table)
    return table


def to_table_rows(rows: pa.Table, table) -> pa.Table:
    """Cast lake rows (``event_type`` included) to the table's current Arrow schema, sorted as declared."""
    schema = table.schema().as_arrow()
    columns = []
    for field in schema:
        if field.name in rows.column_names:
            columns.append(rows.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(rows.num_rows, field.type))
    out = pa.Table.from_arrays(columns, schema=schema)
    return out.sort_by([(name, "ascending") for name in SORT])


def snapshot_summaries(table) -> list[dict]:
    """Every snapshot's id, time and our ``okta-lake.*`` summary entries, oldest first."""
    out = []
    for snapshot in table.snapshots():
        extra = snapshot.summary.additional_properties if snapshot.summary else {}
        out.append({"snapshot_id": snapshot.snapshot_id, "timestamp_ms": snapshot.timestamp_ms,
                    "operation": str(snapshot.summary.operation.value) if snapshot.summary else None,
                    **{k[len(SUMMARY_PREFIX):]: v for k, v in extra.items() if k.startswith(SUMMARY_PREFIX)}})
    return out


def connect(target: IcebergTarget):
    """Open the catalog, turning connection problems into one clear line."""
    try:
        return load_catalog(target)
    except IcebergConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise IcebergConfigError(f"cannot open the Iceberg catalog for {target.describe()}: "
                                 f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                                 ) from None

