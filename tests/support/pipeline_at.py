"""``python -m tests.support.pipeline_at AT [options]``: ``python -m pipeline [options]``, started at wall time AT.

It imports what a run imports before it opens the Iceberg catalog, then waits until AT and calls the
same entry as ``python -m pipeline``. Runs launched together then reach the catalog together: their
start-up (seconds of imports on a loaded machine) would otherwise spread them apart, and a race
between them would rarely happen in a test.
"""

import sys
import time

import pyiceberg.catalog.sql  # noqa: F401 - a run imports these when it opens the catalog
import pyiceberg.table  # noqa: F401

from pipeline.main import entry

if __name__ == "__main__":
    at, sys.argv = float(sys.argv[1]), ["pipeline", *sys.argv[2:]]
    time.sleep(max(0.0, at - time.time()))
    entry()
