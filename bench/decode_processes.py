"""The local decode processes measured apart: ``python -m bench.decode_processes {alone|split} ...``.

- ``alone FILE [PROCESSES]``: only :func:`sources.files.pool.decoded_batches` over the file's
  64 MB ranges (no Beam, no staging); prints wall seconds, CPU seconds of this process and of the
  decode processes, rows and the largest decode process's peak RSS.
- ``split PIPELINE_ARGS...``: the whole pipeline in this process (``pipeline.main``), then its CPU
  seconds and peak RSS apart from its decode processes' (``getrusage`` SELF and CHILDREN).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import sys
import time


def _usage() -> tuple[float, float, float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime,
            own.ru_maxrss / 1024, children.ru_maxrss / 1024)


def alone(path: str, processes: int) -> None:
    from sources.files.beam import SPLIT_BYTES
    from sources.files.pool import decoded_batches
    from transforms.settings import DecodeSettings

    size = os.path.getsize(path)
    ranges = [(path, start, min(start + SPLIT_BYTES, size), False) for start in range(0, size, SPLIT_BYTES)]
    settings = DecodeSettings()  # the run's defaults: personal.*, raw_event, 1000 lines or 8 MB a batch
    start, read, rows = time.perf_counter(), 0, 0
    for counts, _dead, _parts, table in decoded_batches(ranges, settings, processes):
        read += counts[0]
        rows += 0 if table is None else table.num_rows
    own, children, _, child_rss = _usage()
    print(f"processes={processes} read={read:,} rows={rows:,} wall={time.perf_counter() - start:.2f} s "
          f"parent_cpu={own:.2f} s processes_cpu={children:.2f} s largest_process_rss={child_rss:.0f} MB "
          f"load={os.getloadavg()[0]:.2f}")


def split(args: list[str]) -> int:
    start = time.perf_counter()
    from pipeline.main import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    own, children, own_rss, child_rss = _usage()
    print(f"code={code} wall={time.perf_counter() - start:.1f} s pipeline_cpu={own:.1f} s "
          f"decode_processes_cpu={children:.1f} s pipeline_rss={own_rss:.0f} MB "
          f"largest_decode_process_rss={child_rss:.0f} MB load={os.getloadavg()[0]:.2f}")
    return code


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "alone":
        alone(rest[0], int(rest[1]) if len(rest) > 1 else 2)
    else:
        sys.exit(split(rest))
