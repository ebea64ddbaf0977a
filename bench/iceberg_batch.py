"""A batch run's Iceberg steps over many partitions, on the local runner: ``python -m bench.iceberg_batch``.

``[--events 50000] [--days 50] [--repeat 4] [--work DIR] [--tree CHECKOUT]``: writes a lake of EVENTS personal
events over DAYS days (two personal types: 2 x DAYS partitions) with the pipeline (no
Iceberg), then times, REPEAT times each on a fresh warehouse:

- ``steps``: only the Iceberg steps of the batch graph (``sinks.iceberg.beam.commit_after_lake``
  after a ``Create`` of the run's manifest) on the FnApiRunner, pipeline start included;
- ``one-call`` / ``pieces`` (no Beam): ``sinks.iceberg.commit.commit_lake_files`` against
  ``sinks.iceberg.files`` base snapshot + one ``write_partition`` per partition + ``commit_partitions``.

``--tree`` imports the pipeline from another checkout, to time its graph on the same lake (one
without ``sinks/iceberg/files.py`` skips ``pieces``). Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import shutil
import sys
import tempfile
import time


def make_lake(work: str, events: int, days: int) -> str:
    from devtools.eventgen.generator import _format_us, _to_us, export_lines
    from pipeline.main import main

    start = "2026-10-01T00:00:00Z"
    source, lake = os.path.join(work, "input.jsonl"), os.path.join(work, "lake")
    if not glob.glob(os.path.join(lake, "_runs", "*.json")):
        with open(source, "wb") as out:
            for line in export_lines(events, duplicate_rate=0, bad_line_rate=0, personal_share=1.0, start=start,
                                     end=_format_us(_to_us(start) + days * 86_400_000_000)):
                out.write(line + b"\n")
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["--quiet", f"--input={source}", f"--output={lake}"]) == 0
    return lake


def steps(lake: str, manifest: dict, warehouse: str, run_id: str) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.options import LakeOptions
    from sinks.iceberg import beam as iceberg_output

    options = PipelineOptions(["--runner=FnApiRunner", f"--output={lake}", "--iceberg_table=okta.events",
                               f"--iceberg_warehouse={warehouse}", "--source=file", "--input=unused"])
    assert iceberg_output.preflight(options.view_as(LakeOptions)) is None  # creates the table, outside the timing
    start = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        iceberg_output.commit_after_lake(pipeline | beam.Create([manifest]), options.view_as(LakeOptions), lake,
                                         run_id)
    return time.perf_counter() - start


def functions(kind: str, lake: str, partitions: list[str], warehouse: str) -> dict:
    from sinks.iceberg.catalog import load_catalog
    from sinks.iceberg.commit import commit_lake_files
    from sinks.iceberg.settings import IcebergTarget
    from sinks.iceberg.table import open_table

    target = IcebergTarget("okta.events", "sqlite", None, warehouse)
    catalog = load_catalog(target)
    open_table(catalog, target)
    start = time.perf_counter()
    if kind == "one-call":
        result = commit_lake_files(catalog, target, lake, [(p, None) for p in partitions], {"run-id": "bench"})
        return {"seconds": round(time.perf_counter() - start, 3), "rows_added": result.rows_added}
    from sinks.iceberg.files import base_snapshot, commit_partitions, new_commit_id, write_partition

    table, base = base_snapshot(catalog, target)
    written = [write_partition(table, lake, p, base) for p in partitions]
    writes = time.perf_counter() - start
    result = commit_partitions(catalog, target, written, base, new_commit_id(), {"run-id": "bench"})
    return {"seconds": round(time.perf_counter() - start, 3), "writes_seconds": round(writes, 3),
            "commit_seconds": round(time.perf_counter() - start - writes, 3), "rows_added": result.rows_added}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "iceberg-batch-bench"))
    parser.add_argument("--tree", help="import the pipeline from this checkout instead")
    args = parser.parse_args()
    if args.tree:
        sys.path.insert(0, os.path.abspath(args.tree))
    os.makedirs(args.work, exist_ok=True)
    lake = make_lake(args.work, args.events, args.days)
    [manifest_path] = glob.glob(os.path.join(lake, "_runs", "*.json"))
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    partitions = [p["partition"] for p in manifest["partitions"]]
    try:
        import sinks.iceberg.files  # noqa: F401
        kinds = ["steps", "one-call", "pieces"]
    except ImportError:
        kinds = ["steps", "one-call"]
    for rep in range(args.repeat):
        for kind in kinds:
            warehouse = os.path.join(args.work, f"warehouse-{kind}-{rep}")
            shutil.rmtree(warehouse, ignore_errors=True)
            if kind == "steps":
                out = {"seconds": round(steps(lake, manifest, warehouse, f"bench-{rep}"), 3)}
            else:
                out = functions(kind, lake, partitions, warehouse)
            print(json.dumps({"kind": kind, "partitions": len(partitions), **out}), flush=True)


if __name__ == "__main__":
    main()
