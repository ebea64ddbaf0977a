"""The BigQuery output's settings: the table (``--bigquery_table``) and an emulator endpoint for trials."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TABLE_SPEC = re.compile(
    r"^(?P<project>[a-z][-a-z0-9.:]{4,61}[a-z0-9]):(?P<dataset>\w{1,1024})\.(?P<table>[\w$-]{1,1024})$")


def parse_table_spec(spec: str) -> tuple[str, str, str] | None:
    match = _TABLE_SPEC.match(spec or "")
    return (match["project"], match["dataset"], match["table"]) if match else None


@dataclass(frozen=True)
class BigQueryTarget:
    """Where rows go; plain values, so it travels inside the pipeline graph."""

    table_spec: str  # PROJECT:DATASET.TABLE
    raw_event: bool = True
    endpoint: str | None = None  # an emulator's base URL (tests); None = BigQuery

    @property
    def project(self) -> str:
        return parse_table_spec(self.table_spec)[0]

    @property
    def table_id(self) -> str:
        project, dataset, table = parse_table_spec(self.table_spec)
        return f"{project}.{dataset}.{table}"

    def client(self):
        from google.cloud import bigquery

        if self.endpoint:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            return bigquery.Client(project=self.project, credentials=AnonymousCredentials(),
                                   client_options=ClientOptions(api_endpoint=self.endpoint))
        return bigquery.Client(project=self.project)


def add_flags(parser) -> None:
    group = parser.add_argument_group("BigQuery (optional, with or instead of reading the lake directly)")
    group.add_argument(
        "--bigquery_table",
        help="Also write the rows to this BigQuery table, PROJECT:DATASET.TABLE (created if missing: DAY "
             "partitioned on published, clustered by event_type and actor_id). Batch runs merge the "
             "touched lake partitions in with a load job + MERGE (no duplicates on reruns); streaming "
             "runs use streaming inserts.")
    group.add_argument(
        "--bigquery_endpoint",
        help="Base URL of a BigQuery emulator (tests, local trials); default: BigQuery itself.")


def resolve(options, problems: list[str], *, raw_event: bool) -> BigQueryTarget | None:
    """The run's :class:`BigQueryTarget` (None without ``--bigquery_table``, or with its problem appended)."""
    if not options.bigquery_table:
        return None
    if not parse_table_spec(options.bigquery_table):
        problems.append(f"--bigquery_table must look like PROJECT:DATASET.TABLE, not {options.bigquery_table!r}")
        return None
    return BigQueryTarget(options.bigquery_table, raw_event, options.bigquery_endpoint)
