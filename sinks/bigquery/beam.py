"""The BigQuery step of a batch run: after the lake commit, merge the touched partitions into the table."""

from __future__ import annotations

import apache_beam as beam

from common.metrics import counter
from sinks.bigquery.client import merge_partitions
from sinks.bigquery.settings import BigQueryTarget


class _MergeFn(beam.DoFn):
    def __init__(self, target: BigQueryTarget, lake: str, run_id: str):
        self.target, self.lake, self.run_id = target, lake, run_id

    def process(self, manifest):
        partitions = [p["partition"] for p in manifest["partitions"]]
        result = merge_partitions(self.target, self.lake, partitions, self.run_id)
        counter("bigquery_rows_loaded").inc(result["rows_loaded"])
        counter("bigquery_rows_inserted").inc(result["rows_inserted"] or 0)
        yield {**manifest, "bigquery": result}


def merge_step(target: BigQueryTarget, lake: str, run_id: str):
    """The step that takes the run manifest, merges its partitions into BigQuery and passes it on."""
    return beam.ParDo(_MergeFn(target, lake, run_id))
