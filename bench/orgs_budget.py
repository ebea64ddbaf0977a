"""Many-org backfill benchmark: does each org use its own budget, and only its own? (issue 14)

    python -m bench.orgs_budget [--limits 20,50,120] [--shares 1,0.5,1] [--windows 3] [--page_limit 200]

Starts one ``python -m devtools.system_log_server`` per org (its own process, its own rate limit per 60 s
window, its own
token), each holding enough personal.* events for about ``--windows`` windows of its budget
(limit x share requests per window, ``--page_limit`` events per request), runs ONE backfill of all of
them (``python -m pipeline --source=okta --orgs=FILE``) into a temporary lake, stops the servers and
reads what each saw (``--stats-file``). Prints per org: requests per full rate window while it had
work (the first and last windows are partial), the share of its budget that is, the most requests
in any window, and its 429s.

Targets: each org >= 90% of limit x share in every full window while it has work, never above it,
no 429.
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


def start_server(tmp: Path, name: str, events: int, days: float, rate_limit: int, token: str, seed: int):
    token_file, ready = tmp / f"{name}.token", tmp / f"{name}.ready"
    token_file.write_text(token)
    command = [sys.executable, "-m", "devtools.system_log_server", "--generate", str(events), "--days", str(days),
               "--personal-share", "1.0", "--seed", str(seed), "--token-file", str(token_file), "--ready-file",
               str(ready), "--rate-limit", str(rate_limit), "--stats-file", str(tmp / f"{name}.stats.json")]
    return subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL), ready


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.orgs_budget", description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="20,50,120", help="each org's requests per minute (default 20,50,120)")
    parser.add_argument("--shares", default="1,0.5,1", help="each org's rate_share (default 1,0.5,1)")
    parser.add_argument("--windows", type=float, default=3.0, help="minutes of work per org at its budget")
    parser.add_argument("--page_limit", type=int, default=200, help="events per request (default 200)")
    parser.add_argument("--days", type=float, default=1.0)
    args = parser.parse_args(argv)
    limits = [int(x) for x in args.limits.split(",")]
    shares = [float(x) for x in args.shares.split(",")]
    names = [f"org{i}" for i in range(len(limits))]
    print(f"machine: {describe()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-orgs-"))
    servers, env, entries = [], dict(os.environ), []
    try:
        readies = []
        for i, (name, limit, share) in enumerate(zip(names, limits, shares)):
            # Slices (24 of 1h) each end with a partial page: count them as requests too.
            events = int(limit * share * args.windows * args.page_limit * 0.9)
            token = secrets.token_urlsafe(24)
            server, ready = start_server(tmp, name, events, args.days, limit, token, seed=31 + i)
            servers.append(server)
            readies.append(ready)
            env[f"BENCH_{name.upper()}_TOKEN"] = token
            print(f"{name}: {limit} requests/min, share {share:g} -> budget {limit * share:g}/window; "
                  f"{events:,} events at {args.page_limit}/page")
        for ready, server in zip(readies, servers):
            while not ready.exists() or not ready.read_text().strip():
                if server.poll() is not None:
                    raise SystemExit("a local System Log server did not start")
                time.sleep(0.2)
        for name, share, ready in zip(names, shares, readies):
            entries.append({"url": ready.read_text().strip(), "token_env": f"BENCH_{name.upper()}_TOKEN",
                            "rate_share": share})
        orgs = tmp / "orgs.json"
        orgs.write_text(json.dumps({"orgs": entries}))
        until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=1)
        since = until - dt.timedelta(days=args.days, minutes=2)
        command = [sys.executable, "-m", "pipeline", "--quiet", "--source=okta", f"--orgs={orgs}",
                   f"--since={since:%Y-%m-%dT%H:%M:%SZ}", f"--until={until:%Y-%m-%dT%H:%M:%SZ}", "--slice=1h",
                   f"--okta_page_limit={args.page_limit}", f"--output={tmp / 'lake'}"]
        started = time.monotonic()
        run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        for server in servers:
            server.terminate()
            server.wait(timeout=60)
        if run.returncode != 0:
            raise SystemExit(f"the backfill failed:\n{run.stderr[-3000:]}")
        print(f"one backfill of {len(names)} orgs: {wall:.1f} s")
        for line in run.stdout.splitlines():
            if "-> OK" in line or "-> MISMATCH" in line:
                print(line)
        for name, limit, share in zip(names, limits, shares):
            stats = json.loads((tmp / f"{name}.stats.json").read_text())
            records = stats["records"]
            per_window = collections.Counter(int(r["epoch"] // 60) for r in records)
            full = [per_window[w] for w in sorted(per_window)[1:-1]]
            budget = limit * share
            use = [n / budget for n in full]
            print(json.dumps({"org": name, "limit": limit, "share": share, "requests": len(records),
                              "throttled": stats["by_status"].get("429", 0),
                              "requests_per_window": [per_window[w] for w in sorted(per_window)],
                              "max_requests_in_a_window": max(per_window.values())}))
            print(f"{name}: full windows while it had work {full} = "
                  f"{', '.join(f'{u:.0%}' for u in use) or 'none'} of its budget {budget:g}; "
                  f"at most {max(per_window.values())} in any window; "
                  f"{stats['by_status'].get('429', 0)} x 429", flush=True)
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
