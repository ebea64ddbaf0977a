"""A writer process for the concurrency tests.

``python -m tests.support.iceberg_writer SPEC START STOP CHUNK AT RUN [PATH]``.

Waits until the wall clock reaches AT (so all writers start together), then commits events
[START, STOP) in chunks of CHUNK, each chunk one snapshot; prints one JSON line per commit.
PATH ``rows`` (default) commits with ``commit_rows``; ``files`` the way a batch run on Dataflow
does (sinks/iceberg/files.py): a base snapshot, one data-file write per event type (partition)
checked at it, then one commit of all files.
"""

import json
import sys
import time

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.commit import commit_rows
from sinks.iceberg.files import base_snapshot, commit_partitions, new_commit_id, write_rows
from sinks.iceberg.settings import IcebergTarget
from tests.support.iceberg import TYPES, make_rows


def main(argv):
    spec, start, stop, chunk, at, run_id, *path = argv
    target = IcebergTarget(**json.loads(spec))
    catalog = load_catalog(target)
    start, stop, chunk = int(start), int(stop), int(chunk)
    time.sleep(max(0.0, float(at) - time.time()))
    for low in range(start, stop, chunk):
        rows, summary = make_rows(range(low, min(low + chunk, stop))), {"run-id": run_id, "source": "test"}
        if path == ["files"]:
            result = commit_files(catalog, target, rows, summary)
        else:
            result = commit_rows(catalog, target, rows, summary)
        print(json.dumps(result.as_dict()), flush=True)


def commit_files(catalog, target, rows, summary):
    import pyarrow.compute as pc

    table, base = base_snapshot(catalog, target)
    written = [write_rows(table, rows.filter(pc.equal(rows.column("event_type"), t)), base, t) for t in TYPES]
    return commit_partitions(catalog, target, written, base, new_commit_id(), summary)


if __name__ == "__main__":
    main(sys.argv[1:])
