"""The Iceberg output's settings: its flags, their checks, and the frozen :class:`IcebergTarget`.

How the catalog is opened from these settings is :mod:`sinks.iceberg.catalog`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

CATALOGS = ("sqlite", "sql", "rest")
CATALOG_NAME = "okta"  # pyiceberg's catalog name: PYICEBERG_CATALOG__OKTA__* variables configure it further
REST_CREDENTIAL_ENV = "ICEBERG_REST_CREDENTIAL"
REST_TOKEN_ENV = "ICEBERG_REST_TOKEN"
DEFAULT_WAREHOUSE_DIR = "_iceberg"
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class IcebergTarget:
    """The table and its catalog; plain values, so it travels inside the pipeline graph."""

    table: str  # NAMESPACE.TABLE
    catalog: str = "sqlite"
    uri: str | None = None
    warehouse: str | None = None
    credential_file: str | None = None

    @property
    def identifier(self) -> tuple[str, str]:
        namespace, _, name = self.table.rpartition(".")
        return namespace, name

    def describe(self) -> str:
        """Where the table is, for messages (never a credential)."""
        where = _redact(self.uri) if self.uri else self.warehouse
        return f"{self.table} ({self.catalog} catalog {where})"


def target_from_options(options, lake: str | None = None) -> IcebergTarget | None:
    """The :class:`IcebergTarget` the options name (None without ``--iceberg_table``); the default sqlite
    warehouse is beside ``lake`` (default ``--output``)."""
    if not getattr(options, "iceberg_table", None):
        return None
    warehouse = options.iceberg_warehouse
    lake = lake or getattr(options, "output", None)
    if not warehouse and options.iceberg_catalog == "sqlite" and lake:
        warehouse = lake.rstrip("/") + "/" + DEFAULT_WAREHOUSE_DIR
    return IcebergTarget(options.iceberg_table, options.iceberg_catalog, options.iceberg_catalog_uri,
                         warehouse, options.iceberg_credential_file)


def resolve(options, problems: list[str], *, lake: str | None, on_dataflow: bool) -> IcebergTarget | None:
    """The run's :class:`IcebergTarget` (None without ``--iceberg_table``, or with its problems appended)."""
    if options.iceberg_keep_snapshots < 0:
        problems.append("--iceberg_keep_snapshots must be 0 or more")
        return None
    target = target_from_options(options, lake)
    if target is None:
        return None
    if target.catalog == "sqlite" and on_dataflow:
        problems.append("--iceberg_catalog=sqlite is a file on one machine; on Dataflow use --iceberg_catalog=sql "
                        "or rest")
        return None
    found = problems_of(target)
    problems += found
    return None if found else target


def problems_of(target: IcebergTarget) -> list[str]:
    """Every configuration problem of the target, one line each (checked before a run starts)."""
    errors = []
    if not _TABLE.match(target.table):
        errors.append(f"--iceberg_table must look like NAMESPACE.TABLE (letters, digits, _), not {target.table!r}")
    if target.catalog not in CATALOGS:
        errors.append(f"--iceberg_catalog must be one of {', '.join(CATALOGS)}")
        return errors
    if target.catalog == "sqlite":
        if target.uri and not target.uri.startswith("sqlite:///"):
            errors.append("--iceberg_catalog_uri for --iceberg_catalog=sqlite must be sqlite:///PATH")
        if not target.uri and target.warehouse and "://" in target.warehouse:
            errors.append("a gs:// or s3:// --iceberg_warehouse with --iceberg_catalog=sqlite needs "
                          "--iceberg_catalog_uri=sqlite:///LOCAL/PATH.db")
        if not target.warehouse:
            errors.append("--iceberg_catalog=sqlite needs --iceberg_warehouse (or --output, beside which it goes)")
    elif target.catalog == "sql":
        if not target.uri:
            errors.append("--iceberg_catalog=sql needs --iceberg_catalog_uri=postgresql://USER@HOST:PORT/DB")
        elif not re.match(r"^postgres(ql)?(\+psycopg2)?://", target.uri):
            errors.append("--iceberg_catalog_uri for --iceberg_catalog=sql must be postgresql://USER@HOST:PORT/DB")
        elif urlsplit(target.uri).password:
            errors.append("--iceberg_catalog_uri must not hold a password: use PGPASSWORD or ~/.pgpass")
        if not target.warehouse:
            errors.append("--iceberg_catalog=sql needs --iceberg_warehouse (a folder, gs:// or s3:// URI)")
    elif target.catalog == "rest":
        if not target.uri or not re.match(r"^https?://", target.uri):
            errors.append("--iceberg_catalog=rest needs --iceberg_catalog_uri=https://HOST/PATH")
        elif urlsplit(target.uri).password:
            errors.append(f"--iceberg_catalog_uri must not hold a credential: use {REST_CREDENTIAL_ENV}, "
                          f"{REST_TOKEN_ENV} or --iceberg_credential_file")
    return errors


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@")
    return uri


def add_flags(parser) -> None:
    """The Iceberg option group (the run's options, and ``okta-personal-lake maintain``'s)."""
    iceberg = parser.add_argument_group("Apache Iceberg (optional, next to the Hive lake)")
    iceberg.add_argument(
        "--iceberg_table",
        help="Also commit the rows to this Apache Iceberg table, NAMESPACE.TABLE (created if missing from the "
             "schema module: day(published) + identity(event_type) partitions, sorted by published; a newly "
             "documented field becomes a new optional column). Each batch run, and each streaming window, is one "
             "snapshot, insert-if-absent on (uuid, target_index), safe with concurrent runs.")
    iceberg.add_argument(
        "--iceberg_catalog", choices=("sqlite", "sql", "rest"), default="sqlite",
        help="The Iceberg catalog: sqlite (embedded, no server; catalog file WAREHOUSE/catalog.db), sql (a SQL "
             "catalog on PostgreSQL, password from PGPASSWORD or ~/.pgpass) or rest (an Iceberg REST catalog: "
             "BigLake metastore, Polaris, Glue, Nessie; credential from ICEBERG_REST_CREDENTIAL, "
             "ICEBERG_REST_TOKEN or --iceberg_credential_file).")
    iceberg.add_argument(
        "--iceberg_catalog_uri",
        help="The catalog's URI: sqlite:///PATH.db (sqlite: optional with a local warehouse, a local file needed "
             "with a gs:// or s3:// one), postgresql://USER@HOST:PORT/DB (sql) or https://HOST/PATH (rest). Never "
             "holds a password.")
    iceberg.add_argument(
        "--iceberg_warehouse",
        help="Where the table's data and metadata files go (local folder, gs:// or s3://, reached with the same "
             "--s3_* options and STORAGE_EMULATOR_HOST as the lake); default with --iceberg_catalog=sqlite: "
             "OUTPUT/_iceberg. REST catalogs may choose it themselves.")
    iceberg.add_argument(
        "--iceberg_credential_file",
        help="Where the REST catalog's credential is (client_id:secret or a token): a file (local, gs://, "
             "s3://) or a Secret Manager secret (projects/P/secrets/S[/versions/V]). Never an option value.")
    iceberg.add_argument(
        "--iceberg_keep_snapshots", type=int, default=60,
        help="With --streaming: every 10 windows, expire all but this many newest snapshots (one per window), "
             "so commits stay fast and time travel reaches back this many windows; 0 never expires "
             "(okta-personal-lake maintain --retention then does).")
