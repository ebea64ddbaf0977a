"""One replay into a lake on local disk, gs:// and s3:// (the stand-ins), whole processes.

    python -m bench.lake_stores [--events 10000] [--repeat 3] [--stores local,gs,s3] [--checkout DIR]

Generates (once, cached in bench/.data/) an export of ``--events`` events over 7 days in random order
(``devtools.eventgen``), starts fake-gcs-server and moto's S3 server on loopback
(tests/support/stores.py), then runs, in turns per round, for each store:

    python -m pipeline --source=file --input=EXPORT --output=LAKE --quiet [--s3_* options]

into a fresh lake each time (a new folder or bucket prefix), as a subprocess: interpreter start to
exit. It prints one JSON line per run (seconds, events read per second, CPU seconds of the process
and its children, and for s3:// the requests moto served) and, at the end, the median per store
and its ratio to local disk. ``--checkout`` runs the pipeline of another checkout (e.g. an export
of an older commit) against the same stand-ins and input. ``--in_process`` times the runs inside this
process instead (imports and interpreter start excluded: the processing alone; CPU is then this
process's own).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.machine import describe

DATA = Path(__file__).resolve().parent / ".data"
REPO = Path(__file__).resolve().parent.parent


def export(events: int, seed: int = 11) -> Path:
    path = DATA / f"replay-{events}-7d-random-seed{seed}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, "-m", "devtools.eventgen", "--events", str(events), "--days", "7",
                        "--random_order", "--seed", str(seed), "--output", str(tmp)], cwd=REPO, check=True)
        tmp.rename(path)
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def requests_served(log: Path) -> int:
    """Requests moto's server has logged so far (one access-log line each)."""
    try:
        return sum(1 for line in log.read_text(errors="replace").splitlines() if '" 20' in line or '" 4' in line)
    except FileNotFoundError:
        return 0


def run_once(checkout: Path, source: Path, lake: str, options: list[str], env: dict) -> dict:
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipeline", "--source=file", f"--input={source}",
                           f"--output={lake}", "--quiet", *options], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the run into {lake} exited {done.returncode}:\n{done.stderr[-3000:]}")
    line = next(row for row in done.stdout.splitlines() if row.strip().startswith("events read"))
    read = int(line.split()[2].replace(",", ""))
    return {"seconds": round(seconds, 2), "read": read, "events_per_s": round(read / seconds),
            "cpu_s": round(children_cpu() - cpu, 2)}


def run_in_process(source: Path, lake: str, options: list[str], env: dict) -> dict:
    import contextlib
    import io

    from pipeline.main import main as pipeline_main

    os.environ.update(env)
    out = io.StringIO()
    own = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = pipeline_main(["--source=file", f"--input={source}", f"--output={lake}", "--quiet", *options])
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    if code != 0:
        raise RuntimeError(f"the run into {lake} exited {code}")
    line = next(row for row in out.getvalue().splitlines() if row.strip().startswith("events read"))
    read = int(line.split()[2].replace(",", ""))
    cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    return {"seconds": round(seconds, 2), "read": read, "events_per_s": round(read / seconds),
            "cpu_s": round(cpu, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="local,gs,s3")
    parser.add_argument("--checkout", type=Path, default=REPO)
    parser.add_argument("--in_process", action="store_true", help="time the processing alone, in this process")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.support.stores import GCS_BUCKET, S3_BUCKET, fake_gcs, gce_metadata, moto_s3

    source = export(args.events)
    stores = args.stores.split(",")
    print(json.dumps({"machine": describe(), "events": args.events, "input": source.name,
                      "checkout": str(args.checkout), "in_process": args.in_process}))
    results: dict[str, list[dict]] = {store: [] for store in stores}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-lake-stores-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(args.checkout)}
        options = {"local": [], "gs": [], "s3": []}
        if "gs" in stores:
            env.update(stack.enter_context(gce_metadata()))
            env["STORAGE_EMULATOR_HOST"] = stack.enter_context(fake_gcs(tmp / "gcs"))
        if "s3" in stores:
            options["s3"] = stack.enter_context(moto_s3(tmp / "s3"))
        for round_number in range(args.repeat):
            for store in stores:
                lake = {"local": str(tmp / f"lake-{round_number}"), "gs": f"gs://{GCS_BUCKET}/lake-{round_number}",
                        "s3": f"s3://{S3_BUCKET}/lake-{round_number}"}[store]
                before = requests_served(tmp / "s3" / "moto.log")
                run = (run_in_process(source, lake, options[store], env) if args.in_process
                       else run_once(args.checkout, source, lake, options[store], env))
                result = {"store": store, "round": round_number + 1, "load": round(os.getloadavg()[0], 2), **run}
                if store == "s3":
                    result["s3_requests"] = requests_served(tmp / "s3" / "moto.log") - before
                results[store].append(result)
                print(json.dumps(result), flush=True)
    local = statistics.median(r["seconds"] for r in results.get("local", [])) if results.get("local") else None
    for store, runs in results.items():
        median = statistics.median(r["seconds"] for r in runs)
        ratio = f", {median / local:.2f}x local" if local else ""
        print(f"{store}: median {median:.2f} s, {statistics.median(r['events_per_s'] for r in runs):,.0f} events/s, "
              f"CPU {statistics.median(r['cpu_s'] for r in runs):.2f} s{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
