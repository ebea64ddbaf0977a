"""How the Apache Iceberg catalog is opened from its settings (:mod:`sinks.iceberg.settings`); no Beam here.

Three kinds of catalog (``--iceberg_catalog``):

- ``sqlite`` (default): pyiceberg's SQL catalog in a SQLite file, needing no server. The
  warehouse (data and metadata files) defaults to ``OUTPUT/_iceberg`` and the catalog file
  to ``WAREHOUSE/catalog.db``; a gs:// or s3:// warehouse needs ``--iceberg_catalog_uri``
  naming a local SQLite file. One machine only: SQLite cannot be shared by Dataflow workers.
- ``sql``: the same SQL catalog on PostgreSQL, what a team shares
  (``--iceberg_catalog_uri=postgresql://user@host:5432/db``). The password comes from
  ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads them); a password inside the URI is refused.
- ``rest``: an Iceberg REST catalog (BigLake metastore, Polaris, Glue, Nessie, ...). Its
  credential comes from ``ICEBERG_REST_CREDENTIAL`` (OAuth ``client_id:secret``) or
  ``ICEBERG_REST_TOKEN`` (a bearer token), or from ``--iceberg_credential_file`` (a file or
  a Secret Manager secret name), never from an option value.

**Object stores.** A gs:// or s3:// warehouse is read and written with pyiceberg's
PyArrow FileIO, configured by :func:`file_io_properties` from what the Hive lake already
uses, so one setting reaches both: Beam's S3 options (``--s3_endpoint_url``,
``--s3_access_key_id``, ``--s3_secret_access_key``, ``--s3_region_name``; without them
AWS's default credential chain) and, for GCS, the application default credentials or,
when ``STORAGE_EMULATOR_HOST`` points at a local stand-in, that endpoint with a dummy
token. ``PYICEBERG_CATALOG__OKTA__*`` variables (or ``~/.pyiceberg.yaml``, catalog
``okta``) add or override any other pyiceberg property (e.g. ``s3.role-arn``).

**A new SQL catalog, opened by many runs at once.** pyiceberg's ``SqlCatalog`` creates its
two tables on first use by checking, then creating: two processes opening an empty
database together both see no table and the second ``CREATE TABLE`` fails (on PostgreSQL
``DuplicateTable`` or a ``pg_type`` unique violation, since ``CREATE TABLE`` there is not
safe against a concurrent one). :func:`create_catalog_tables` takes its place and
serialises the check and the creation: on PostgreSQL inside one transaction holding an
advisory lock (its wait bounded by ``lock_timeout``), on SQLite inside ``BEGIN IMMEDIATE``
(SQLite's write lock; its wait bounded by the driver's busy timeout). Whoever comes second
finds the tables there and creates nothing; nothing is retried on an error message.
"""

from __future__ import annotations

import functools
import os
import re
import time

from common.errors import LakeError
from sinks.iceberg.settings import CATALOG_NAME, REST_CREDENTIAL_ENV, REST_TOKEN_ENV, IcebergTarget, problems_of
from storage import fs, secrets


class IcebergConfigError(LakeError, ValueError):
    """A catalog or table setting that cannot work; the message is one line and holds no secret."""


def _file_uri(path: str) -> str:
    if "://" in path:
        return path
    return "file://" + os.path.abspath(path)


def file_io_properties() -> dict[str, str]:
    """pyiceberg FileIO properties for object stores, from the options the lake's filesystems use.

    Holds the S3 secret key when one was given: never log it (pyiceberg keeps it in memory only).
    """
    properties = {}
    s3 = fs.s3_settings()
    for key, name in (("endpoint", "s3.endpoint"), ("access_key_id", "s3.access-key-id"),
                      ("secret_access_key", "s3.secret-access-key"), ("session_token", "s3.session-token"),
                      ("region", "s3.region")):
        if key in s3:
            properties[name] = s3[key]
    if "s3.endpoint" in properties and "s3.region" not in properties:
        # Without a region pyiceberg asks AWS where the bucket is, which a local endpoint cannot answer.
        properties["s3.region"] = "us-east-1"
    if host := fs.gcs_emulator_host():
        # The stand-in ignores tokens; a token (and its expiry, which Arrow requires with one) keeps Arrow's
        # GCS client from looking for credentials.
        properties.update({"gcs.service.host": host, "gcs.oauth2.token": "emulator",
                           "gcs.oauth2.token-expires-at": str(int((time.time() + 86400) * 1000))})
    return properties


def _environment_properties() -> dict:
    """What ``PYICEBERG_CATALOG__OKTA__*`` variables and ``~/.pyiceberg.yaml`` say for catalog ``okta``."""
    from pyiceberg.utils.config import Config

    return {k: v for k, v in (Config().get_catalog_config(CATALOG_NAME) or {}).items() if isinstance(v, str)}


def load_catalog(target: IcebergTarget):
    """Open the catalog (creating the SQLite file and the SQL catalog's tables when missing)."""
    bad = problems_of(target)
    if bad:
        raise IcebergConfigError(bad[0])
    if target.catalog in ("sqlite", "sql"):
        uri = target.uri
        if target.catalog == "sqlite":
            if not uri:
                os.makedirs(target.warehouse, exist_ok=True)
                uri = "sqlite:///" + os.path.abspath(os.path.join(target.warehouse, "catalog.db"))
            else:
                os.makedirs(os.path.dirname(os.path.abspath(uri[len("sqlite:///"):])), exist_ok=True)
        else:
            uri = re.sub(r"^postgres(ql)?(\+psycopg2)?://", "postgresql+psycopg2://", uri)
        if "://" not in target.warehouse:
            os.makedirs(target.warehouse, exist_ok=True)
        properties = {**file_io_properties(), **_environment_properties()}
        properties.update(uri=uri, warehouse=_file_uri(target.warehouse))
        return sql_catalog_class()(CATALOG_NAME, **properties)
    from pyiceberg.catalog.rest import RestCatalog

    properties = {**file_io_properties(), **_environment_properties(), "uri": target.uri}
    if target.warehouse:
        properties["warehouse"] = target.warehouse
    properties.update(rest_credential(target))
    return RestCatalog(CATALOG_NAME, **properties)


# Any 64-bit number that no other advisory lock user of the catalog database picks: "oktaiceb" in ASCII.
CATALOG_DDL_LOCK = 0x6F6B746169636562
CATALOG_DDL_LOCK_TIMEOUT_S = 60


@functools.cache
def sql_catalog_class():
    """pyiceberg's ``SqlCatalog`` whose ``create_tables`` (called when it finds its tables missing) is
    :func:`create_catalog_tables`."""
    from pyiceberg.catalog.sql import SqlCatalog

    class LakeSqlCatalog(SqlCatalog):
        def create_tables(self) -> None:
            create_catalog_tables(self.engine)

    return LakeSqlCatalog


def create_catalog_tables(engine, lock_timeout_s: float = CATALOG_DDL_LOCK_TIMEOUT_S) -> None:
    """Create the SQL catalog's tables that are missing, one process at a time (see the module docstring)."""
    from pyiceberg.catalog.sql import SqlCatalogBaseTable
    from sqlalchemy import text

    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # Released when the transaction ends; DDL is transactional there, so the next holder sees the tables.
            connection.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_DDL_LOCK})
        elif engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        SqlCatalogBaseTable.metadata.create_all(connection)  # checks first, under the lock
        connection.commit()


def rest_credential(target: IcebergTarget) -> dict[str, str]:
    """The REST catalog's credential as pyiceberg properties: from a file / Secret Manager or the environment."""
    if target.credential_file:
        try:
            secret = secrets.read_secret(target.credential_file)
        except Exception as exc:  # noqa: BLE001 - the message names the place, never the content
            raise IcebergConfigError(f"--iceberg_credential_file: {exc}") from None
        return {"credential": secret} if ":" in secret else {"token": secret}
    if os.environ.get(REST_CREDENTIAL_ENV, "").strip():
        return {"credential": os.environ[REST_CREDENTIAL_ENV].strip()}
    if os.environ.get(REST_TOKEN_ENV, "").strip():
        return {"token": os.environ[REST_TOKEN_ENV].strip()}
    return {}
