"""Backfill benchmark: events/min through the rate limit, against the local System Log server.

    python -m bench.backfill_throughput [--events 400000] [--rate_limit 120] [--shares 1,0.5]

For each ``--okta_rate_share``: starts ``python -m devtools.system_log_server`` (its own
process) with ``--events`` generated personal.* events over the last
``--days`` and a limit of ``--rate_limit`` requests per minute, runs a
backfill of that range (``python -m pipeline --source=okta``, default
``--slice=1h``, 4 threads) into a temporary lake, stops the server and reads
what it saw (``--stats-file``). Prints, per share: events/min over the API
phase (first to last request) and over the whole run, the ceiling
(limit x share x 1000 events/page), the 429 count, and the most requests
the server counted in any one of its rate windows.

Targets (issue 3): >= 90% of the ceiling with zero 429s at share 1; never
more than the share of any window when it is lower. Runs for share < 1 read
``events x share`` events so every run lasts about as long.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe

REPO = Path(__file__).resolve().parent.parent


def start_server(tmp: Path, events: int, days: float, rate_limit: int, token: str) -> tuple[subprocess.Popen, str]:
    token_file, ready = tmp / "token", tmp / "ready"
    token_file.write_text(token)
    command = [sys.executable, "-m", "devtools.system_log_server", "--generate", str(events), "--days", str(days),
               "--personal-share", "1.0", "--seed", "11", "--token-file", str(token_file), "--ready-file",
               str(ready), "--rate-limit", str(rate_limit), "--stats-file", str(tmp / "stats.json")]
    server = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    while not ready.exists():
        if server.poll() is not None:
            raise SystemExit("the local System Log server did not start")
        time.sleep(0.2)
    return server, ready.read_text().strip()


def one_run(events: int, days: float, rate_limit: int, share: float, slice_: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    token = secrets.token_urlsafe(24)
    try:
        server, url = start_server(tmp, events, days, rate_limit, token)
        until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=1)
        since = until - dt.timedelta(days=days, minutes=2)
        command = [sys.executable, "-m", "pipeline", "--quiet", "--source=okta", f"--okta_org_url={url}",
                   f"--since={since:%Y-%m-%dT%H:%M:%SZ}", f"--until={until:%Y-%m-%dT%H:%M:%SZ}",
                   f"--slice={slice_}", f"--okta_rate_share={share}", f"--output={tmp / 'lake'}"]
        started = time.monotonic()
        run = subprocess.run(command, cwd=REPO, env={**os.environ, "OKTA_API_TOKEN": token},
                             capture_output=True, text=True)
        wall = time.monotonic() - started
        server.terminate()
        server.wait(timeout=60)
        if run.returncode != 0:
            raise SystemExit(f"the backfill failed:\n{run.stderr[-3000:]}")
        stats = json.loads((tmp / "stats.json").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    records = stats["records"]
    ok = [r for r in records if r["status"] == 200]
    api_seconds = records[-1]["at"] - records[0]["at"]
    per_window = collections.Counter(int(r["epoch"] // 60) for r in records)
    full_windows = sorted(per_window)[1:-1]  # the first and last windows are partial
    read = _count(run.stdout, "events read")
    return {
        "share": share, "events": read, "pages": len(ok), "requests": len(records),
        "throttled": stats["by_status"].get("429", 0), "wall_s": round(wall, 1), "api_s": round(api_seconds, 1),
        "events_per_min_api": round(read / api_seconds * 60) if api_seconds else None,
        "events_per_min_wall": round(read / wall * 60),
        "max_requests_in_a_window": max(per_window.values()),
        "max_requests_in_a_full_window": max((per_window[w] for w in full_windows), default=None),
        "requests_per_full_window": [per_window[w] for w in full_windows],
        "ceiling_per_min": int(rate_limit * share * 1000),
    }


def _count(summary: str, label: str) -> int:
    for line in summary.splitlines():
        if line.strip().startswith(label + " "):
            return int(line.strip()[len(label):].split()[0].replace(",", ""))
    raise SystemExit(f"no {label!r} in the summary:\n{summary}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000, help="personal events at share 1 (default 400000)")
    parser.add_argument("--days", type=float, default=1.0, help="days they are published over (default 1)")
    parser.add_argument("--rate_limit", type=int, default=120, help="server's requests per minute (default 120)")
    parser.add_argument("--shares", default="1,0.5", help="rate shares to run (default 1,0.5)")
    parser.add_argument("--slice", default="1h", help="backfill slice length (default 1h, the pipeline's default)")
    args = parser.parse_args(argv)
    print(f"machine: {describe()}")
    print(f"server: {args.rate_limit} requests/min, 1000 events/page; backfill --slice={args.slice}, 4 threads")
    for share in (float(s) for s in args.shares.split(",")):
        result = one_run(int(args.events * share), args.days, args.rate_limit, share, args.slice)
        full = result["requests_per_full_window"]
        # A run starts and ends mid-window, and a partial first window still has the whole budget, so the
        # honest utilisation is measured over the full windows in between.
        utilisation = sum(full) / len(full) / (args.rate_limit * share) if full else float("nan")
        print(json.dumps(result))
        print(f"share {share:g}: {utilisation:.1%} of the budget (limit x share) used in each full rate window "
              f"({full}); {result['events_per_min_api']:,} events/min over the API phase, "
              f"{result['events_per_min_wall']:,} over the whole run (incl. start-up and the lake commit); "
              f"{result['throttled']} x 429; at most {result['max_requests_in_a_window']} requests in any "
              f"server window (limit x share = {args.rate_limit * share:g})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
