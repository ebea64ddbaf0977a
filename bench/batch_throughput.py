"""Batch benchmark: the pipeline against plain Python + pyarrow and against DuckDB, same file, same run.

    python -m bench.batch_throughput [--events 1000000] [--days 28] [--runs a,b,c] [--repeat 2]

For each input it generates (cached in bench/.data/):
  (a) ``--events`` events over ``--days`` days in random ``published`` order, 25% personal;
  (b) the same events sorted by ``published``;
  (c) ``--types`` event types (default 60) in random order, every type kept (``--event_types=*``);
it runs three whole processes (interpreter start to exit, as subprocesses), each
``--repeat`` times, and prints the best seconds, events/s and peak RSS of each and the ratios:
  - pipeline: ``python -m pipeline --source=file --input=FILE --output=TMP --quiet``;
  - plain: ``python -m bench.plain_pyarrow`` (one loop, orjson + pyarrow, one core);
  - duckdb: ``python -m bench.duckdb_copy`` (one ``COPY ... PARTITION_BY`` statement, all cores).
The load average is printed with every run: wall-clock numbers mean little on a busy
machine; CPU seconds (user + system, all processes and threads) are printed too.

Peak RSS: "largest" is the largest single process (``ru_maxrss`` of the finished children);
"summed" adds the peak of every decode process the pipeline started to the largest: an upper
bound for the pipeline's memory (the peaks need not coincide; exact when the largest is the
pipeline's own process, as on (a)). For plain and DuckDB (one process) both are the same.
The decode processes' peaks are measured from outside, while the run goes: every
``SAMPLE_SECONDS`` a thread lists the run's process tree (``/proc/PID/task/*/children``,
recursively), picks the decode processes (``python -m sources.files.worker``) and reads each
one's ``VmHWM`` (the kernel's own peak RSS, what ``ru_maxrss`` reports) from
``/proc/PID/status``, keeping the last value seen. Only growth in a process's last
``SAMPLE_SECONDS`` can escape it, and a decode process reaches its peak while decoding, not as
it ends; a process that lived less than ``SAMPLE_SECONDS`` would be missed (the process count
printed shows it). (Until 2026-12 each decode process reported its own ``ru_maxrss``, which
counts the high-water mark of the pipeline process it was spawned from: the sum was too high.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.machine import describe

DATA = Path(__file__).resolve().parent / ".data"
REPO = Path(__file__).resolve().parent.parent

INPUTS = {
    "a": dict(random_order=True, types=0, keep="personal."),
    "b": dict(random_order=False, types=0, keep="personal."),
    "c": dict(random_order=True, types=60, keep=""),
}
#: How often the decode processes' peak RSS is read while a run goes.
SAMPLE_SECONDS = 0.02
DECODE_PROCESS = b"sources.files.worker"  # in the command line of each decode process


def export(events: int, days: float, random_order: bool, types: int, seed: int = 7) -> Path:
    """The generated export for these settings (written once, then reused)."""
    name = f"export-{events}-{days:g}d-{'random' if random_order else 'sorted'}-{types or 12}types-seed{seed}.jsonl"
    path = DATA / name
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        args = [sys.executable, "-m", "devtools.eventgen", "--events", str(events), "--days", str(days),
                "--seed", str(seed), "--output", str(tmp)]
        if random_order:
            args.append("--random_order")
        if types:
            args += ["--types", str(types)]
        subprocess.run(args, cwd=REPO, check=True, env=_env())
        tmp.rename(path)
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def commands(kind: str, path: Path, out: str, keep: str, extra: list[str]) -> list[str]:
    if kind == "pipeline":
        types = [] if keep == "personal." else [f"--event_types={keep or '*'}{'*' if keep else ''}"]
        return [sys.executable, "-m", "pipeline", "--source=file", f"--input={path}", f"--output={out}",
                "--quiet", *types, *extra]
    module = {"plain": "bench.plain_pyarrow", "duckdb": "bench.duckdb_copy"}[kind]
    return [sys.executable, "-m", module, str(path), out, keep]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), as far as they still run."""
    found, todo = [], [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                kids = [int(child) for child in children.read_text().split()]
            except OSError:  # it ended meanwhile
                continue
            found += kids
            todo += kids
    return found


def decode_peak_kb(pid: int) -> int | None:
    """The peak RSS so far (``VmHWM``, kB) of ``pid`` if it is a decode process; None if not or gone."""
    try:
        if DECODE_PROCESS not in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            return None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class DecodePeaks(threading.Thread):
    """Reads the peak RSS of the decode processes under ``pid`` every ``SAMPLE_SECONDS`` until ``done`` is set:
    ``peaks_kb`` holds the last value seen of each (see the module doc)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peaks_kb, self.done = pid, {}, threading.Event()

    def run(self):
        while not self.done.wait(SAMPLE_SECONDS):
            for child in descendants(self.pid):
                peak = decode_peak_kb(child)
                if peak is not None:
                    self.peaks_kb[child] = max(peak, self.peaks_kb.get(child, 0))


def run_once(argv: list[str], out: str) -> dict:
    """Run one whole process; its wall seconds and peak RSS (the finished children's ``ru_maxrss``), and the
    decode processes' peaks, read from outside while it runs."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = DecodePeaks(proc.pid)
    sampler.start()
    try:
        stdout, stderr = proc.communicate()
    finally:
        sampler.done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    decode_peaks_kb = list(sampler.peaks_kb.values())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss / 1024
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[2]} failed:\n{stderr.decode()[-3000:]}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak,
            "summed_rss_mb": peak + sum(decode_peaks_kb) / 1024, "processes": 1 + len(decode_peaks_kb),
            "load": load, "stdout": stdout.decode()}


def measure(kind: str, path: Path, keep: str, extra: list[str]) -> dict:
    out = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    shutil.rmtree(out)
    # A fresh interpreter per measurement, so RUSAGE_CHILDREN is this child's peak alone.
    code = ("import json,sys; from bench.batch_throughput import run_once; "
            "r = run_once(json.loads(sys.argv[1]), sys.argv[2]); r.pop('stdout'); print(json.dumps(r))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(commands(kind, path, out, keep, extra)), out],
                          cwd=REPO, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=28)
    parser.add_argument("--types", type=int, default=60, help="event types in input (c)")
    parser.add_argument("--runs", default="a,b,c", help="which inputs: a, b, c (comma-separated)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each process; the best counts")
    parser.add_argument("--only", default="pipeline,plain,duckdb", help="which implementations")
    parser.add_argument("--pipeline_args", default="", help="extra pipeline flags, space separated")
    args = parser.parse_args(argv)
    extra = args.pipeline_args.split()
    kinds = args.only.split(",")

    print(f"machine: {describe()}")
    for run in args.runs.split(","):
        spec = INPUTS[run]
        path = export(args.events, args.days, spec["random_order"], args.types if spec["types"] else 0)
        size_mb = os.path.getsize(path) / 1e6
        order = "random order" if spec["random_order"] else "sorted by published"
        kept = f"types starting {spec['keep']!r}" if spec["keep"] else "every type (--event_types=*)"
        print(f"\n({run}) {path.name}: {args.events:,} events over {args.days:g} days, {order}, "
              f"{args.types if spec['types'] else 12} event types, {size_mb:,.0f} MB; keeps {kept}")
        results = {}
        for kind in kinds:
            runs = [measure(kind, path, spec["keep"], extra) for _ in range(args.repeat)]
            bestrun = min(runs, key=lambda r: r["seconds"])
            results[kind] = bestrun
            print(f"  {kind:9}{args.events / bestrun['seconds']:>10,.0f} events/s{bestrun['seconds']:>8.1f} s"
                  f"{bestrun['peak_rss_mb']:>8,.0f} MB peak RSS largest,{bestrun['summed_rss_mb']:>6,.0f} MB summed "
                  f"({bestrun['processes']} processes){bestrun['cpu_seconds']:>7.1f} s CPU   runs: "
                  + ", ".join(f"{r['seconds']:.1f} s (load {r['load']:.2f})" for r in runs), flush=True)
        if "pipeline" in results:
            for other in ("plain", "duckdb"):
                if other in results:
                    mine, theirs = results["pipeline"], results[other]
                    print(f"  pipeline / {other}: {theirs['seconds'] / mine['seconds']:.2f}x speed, "
                          f"{mine['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}x peak RSS (largest process), "
                          f"{mine['summed_rss_mb'] / theirs['summed_rss_mb']:.2f}x (summed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
