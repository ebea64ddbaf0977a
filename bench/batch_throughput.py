"""Batch benchmark: the pipeline against plain Python + pyarrow on the same export.

    python -m bench.batch_throughput --events 200000 [--repeat 3] [--rss 100000,1000000]

Generates a realistic export (cached in bench/.data/), then, each in a fresh
process, runs (a) bench/plain_pyarrow.py, the same flattening in one plain
loop, and (b) the pipeline on Beam's local runner, ``--repeat`` times each,
and prints the best events/s, the peak RSS and their ratio. With ``--rss``
it also runs the pipeline at each size given and compares peak RSS (the
memory target: 1M events within 1.5x of 100k).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.machine import describe
from eventgen import export_lines

DATA = Path(__file__).resolve().parent / ".data"
REPO = Path(__file__).resolve().parent.parent


def export(events: int, seed: int = 7) -> Path:
    path = DATA / f"export-{events}-seed{seed}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for line in export_lines(events, seed=seed):
                out.write(line + b"\n")
        tmp.rename(path)
    return path


def measure(kind: str, input_path: Path, extra: list[str]) -> dict:
    out = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.measure", kind, str(input_path), out, *extra],
                              cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def best(kind: str, input_path: Path, repeat: int, extra: list[str]) -> dict:
    runs = [measure(kind, input_path, extra) for _ in range(repeat)]
    fastest = min(runs, key=lambda r: r["seconds"])
    fastest["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    fastest["all_seconds"] = [round(r["seconds"], 2) for r in runs]
    return fastest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss", default="", help="comma-separated sizes for the memory comparison")
    parser.add_argument("--pipeline_args", default="", help="extra pipeline flags, space separated")
    args = parser.parse_args(argv)
    extra = args.pipeline_args.split()

    print(f"machine: {describe()}")
    path = export(args.events)
    size_mb = os.path.getsize(path) / 1e6
    print(f"input: {path.name} ({args.events:,} events, {size_mb:,.0f} MB, ~25% personal, 0-3 targets)")
    plain = best("plain", path, args.repeat, [])
    beam = best("pipeline", path, args.repeat, extra)
    print(f"{'':24}{'events/s':>12}{'seconds':>10}{'peak RSS MB':>14}   runs (s)")
    for name, r in (("plain pyarrow", plain), ("pipeline " + " ".join(extra), beam)):
        print(f"{name:24}{r['read'] / r['seconds']:>12,.0f}{r['seconds']:>10.2f}{r['peak_rss_mb']:>14,.0f}"
              f"   {r['all_seconds']}")
    ratio = (beam["read"] / beam["seconds"]) / (plain["read"] / plain["seconds"])
    print(f"pipeline / plain events/s: {ratio:.2f}x (target >= 0.80)")

    if args.rss:
        sizes = [int(s) for s in args.rss.split(",")]
        peaks = {}
        for size in sizes:
            r = measure("pipeline", export(size), extra)
            peaks[size] = r["peak_rss_mb"]
            print(f"pipeline at {size:>9,} events: peak RSS {r['peak_rss_mb']:,.0f} MB "
                  f"({r['read'] / r['seconds']:,.0f} events/s)")
        low, high = min(sizes), max(sizes)
        print(f"peak RSS {high:,} / {low:,}: {peaks[high] / peaks[low]:.2f}x (target <= 1.50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
