"""A writer process for the concurrency tests: ``python -m tests.iceberg_writer SPEC START STOP CHUNK AT RUN``.

Waits until the wall clock reaches AT (so all writers start together), then commits events
[START, STOP) in chunks of CHUNK, each chunk one snapshot; prints one JSON line per commit.
"""

import json
import sys
import time

from sinks.iceberg_catalog import IcebergTarget, load_catalog
from sinks.iceberg_table import commit_rows
from tests.iceberg_helpers import make_rows


def main(argv):
    spec, start, stop, chunk, at, run_id = argv
    target = IcebergTarget(**json.loads(spec))
    catalog = load_catalog(target)
    start, stop, chunk = int(start), int(stop), int(chunk)
    time.sleep(max(0.0, float(at) - time.time()))
    for low in range(start, stop, chunk):
        result = commit_rows(catalog, target, make_rows(range(low, min(low + chunk, stop))),
                             {"run-id": run_id, "source": "test"})
        print(json.dumps(result.as_dict()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
