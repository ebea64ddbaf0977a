"""Run ``python -m pipeline`` with a memory accountant beside it, for memory investigations.

    python -m bench.memtrace REPORT [--every 60] [--frames N] [--trim] -- <pipeline arguments>

Every ``--every`` seconds it appends one line of accounting to REPORT: the
process RSS, glibc malloc's bytes in use, free-but-kept and mmapped
(``mallinfo2``), and CPython's small-object allocator (arenas and bytes in
use). Together they say where growth is: Python objects, malloc
fragmentation, or memory outside both (native libraries).

``--frames N`` also runs tracemalloc with N frames and appends the 25
allocation sites that grew most since the first sample, and the object types
whose live count grew most (slow: the pipeline runs a few times slower).
``--trim`` calls ``malloc_trim(0)`` after each sample, to see how much of the
RSS is free memory malloc had kept. ``python -m bench.streaming pubsub-soak
--trace REPORT`` runs the pipeline under this module.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import json
import os
import re
import runpy
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_LIBC = ctypes.CDLL("libc.so.6")
_LIBC.mallinfo2.restype = _MallInfo2


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _obmalloc() -> dict:
    """Arenas and bytes in use of CPython's small-object allocator (``sys._debugmallocstats`` writes to fd 2)."""
    with tempfile.TemporaryFile(mode="w+") as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read()

    def number(label: str) -> int:
        match = re.search(rf"^# {re.escape(label)}\s*=\s*([\d,]+)", text, re.M)
        return int(match.group(1).replace(",", "")) if match else -1

    return {"arenas": number("arenas allocated current"),
            "in_use_mb": round(number("bytes in allocated blocks") / 2**20, 1),
            "arena_mb": round(number("arenas allocated current") * 2**20 / 2**20, 1)}


def _accounting(started: float) -> dict:
    info = _LIBC.mallinfo2()
    return {"minute": round((time.time() - started) / 60, 1), "rss_mb": round(_rss_mb(), 1),
            "malloc_in_use_mb": round(info.uordblks / 2**20, 1), "malloc_free_kept_mb": round(info.fordblks / 2**20, 1),
            "malloc_mmapped_mb": round(info.hblkhd / 2**20, 1), "obmalloc": _obmalloc(),
            "threads": threading.active_count()}


def _type_counts() -> collections.Counter:
    return collections.Counter(f"{getattr(type(o), '__module__', '?')}.{getattr(type(o), '__qualname__', '?')}"
                               for o in gc.get_objects())


def _sample(report: str, every: float, trim: bool) -> None:
    try:
        _sample_forever(report, every, trim)
    except BaseException:  # noqa: BLE001 - the pipeline's stderr may be discarded; say why in the report
        with open(report, "a") as out:
            out.write("sampler stopped:\n" + traceback.format_exc())


def _sample_forever(report: str, every: float, trim: bool) -> None:
    started = time.time()
    base = base_types = None
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    while True:
        time.sleep(every)
        gc.collect()
        lines = [json.dumps(_accounting(started))]
        if trim:
            _LIBC.malloc_trim(0)
            lines.append(f"after malloc_trim: rss_mb {_rss_mb():.1f}")
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot().filter_traces(filters)
            types = _type_counts()
            if base is None:
                base, base_types = snapshot, types
            else:
                lines.append(f"=== traced Python heap {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MB; grew most:")
                for stat in snapshot.compare_to(base, "traceback")[:25]:
                    lines.append(f"+{stat.size_diff / 1024:,.0f} KiB ({stat.count_diff:+,} blocks)")
                    lines += ["    " + frame for frame in stat.traceback.format(most_recent_first=True)]
                lines.append("--- object types that grew most")
                grown = sorted(((types[t] - base_types.get(t, 0), t) for t in types), reverse=True)[:25]
                lines += [f"{diff:+,} {name} (now {types[name]:,})" for diff, name in grown if diff > 0]
        with open(report, "a") as out:
            out.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memtrace")
    parser.add_argument("--every", type=float, default=60)
    parser.add_argument("--frames", type=int, default=0, help="run tracemalloc with this many frames (slow)")
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after each sample")
    parser.add_argument("report")
    parser.add_argument("pipeline_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = [a for a in args.pipeline_args if a != "--"]
    if args.frames:
        tracemalloc.start(args.frames)
    threading.Thread(target=_sample, args=(args.report, args.every, args.trim), daemon=True).start()
    sys.argv = ["pipeline", *rest]
    runpy.run_module("pipeline", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
