"""``python -m devtools.demo``: what ``make run`` does, with no Okta org and no cloud account.

1. starts two local System Log servers (``python -m devtools.system_log_server``), two orgs, on
   free loopback ports, each with a few days of generated events (different
   seeds), its own random API token and a realistic rate limit;
2. runs one backfill of those days from both (``python -m pipeline
   --source=okta --orgs=FILE --since ... --until ...``), each token passed
   the way users pass theirs (an environment variable the orgs file names);
3. stops the servers and shows the lake with DuckDB, grouped by org.

With ``--streaming`` (``make run-streaming``) the server keeps appending
events (a few persisted late) and the pipeline tails it (``--streaming
--source=okta --state ...``) for ``--minutes``, printing a line per
committed window, before the same report.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.durations import rfc3339
from tools.report import report


def start_server(events: int, days: int, token_file: Path, ready_file: Path, rate_limit: int,
                 extra: tuple = (), seed: int = 7) -> subprocess.Popen:
    command = [sys.executable, "-m", "devtools.system_log_server", "--generate", str(events), "--days", str(days),
               "--seed", str(seed), "--port", "0", "--token-file", str(token_file), "--ready-file", str(ready_file),
               "--rate-limit", str(rate_limit), *extra]
    server = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while not ready_file.exists() or not ready_file.read_text().strip():
        if server.poll() is not None:
            raise SystemExit(f"the local System Log server exited with {server.returncode}")
        if time.monotonic() > deadline:
            server.terminate()
            raise SystemExit("the local System Log server did not start within 120 s")
        time.sleep(0.1)
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events the server holds (default 20000)")
    parser.add_argument("--days", type=int, default=3, help="days they are spread over (default 3)")
    parser.add_argument("--rate_limit", type=int, default=600, help="server's requests per minute (default 600)")
    parser.add_argument("--output", default="lake", help="lake folder (default ./lake)")
    parser.add_argument("--streaming", action="store_true", help="tail the server while it appends events")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long to tail with --streaming (default 2)")
    parser.add_argument("--append_rate", type=float, default=20.0, help="events/s appended with --streaming")
    args = parser.parse_args(argv)
    if args.streaming:
        server_extra = ("--append-rate", str(args.append_rate), "--late-fraction", "0.05", "--late-seconds", "45")

        def pipeline_args(urls: list[str], tmp: str) -> list[str]:
            return ["--streaming", "--source=okta", f"--okta_org_url={urls[0]}",
                    f"--state={Path(args.output).resolve()}-cursor.json", f"--output={args.output}",
                    f"--lookback={args.days}d",
                    f"--stop_after={int(args.minutes * 60)}s"]

        return run_against_servers(args, [server_extra], pipeline_args)

    def pipeline_args(urls: list[str], tmp: str) -> list[str]:
        orgs = Path(tmp) / "orgs.json"
        orgs.write_text(json.dumps({"orgs": [{"url": url, "token_env": f"DEMO_ORG{i}_TOKEN"}
                                             for i, url in enumerate(urls)]}, indent=2))
        until = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0) + _dt.timedelta(minutes=1)
        since = until - _dt.timedelta(days=args.days, minutes=2)
        return ["--source=okta", f"--orgs={orgs}", f"--since={rfc3339(since)}",
                f"--until={rfc3339(until)}", "--slice=6h", f"--output={args.output}"]

    return run_against_servers(args, [(), ()], pipeline_args)


def run_against_servers(args, server_extras: list[tuple], pipeline_args) -> int:
    """Start a server per org, run ``python -m pipeline`` with ``pipeline_args(urls, tmp)``, stop them, report.

    Server ``i`` gets the token in ``DEMO_ORG<i>_TOKEN`` (and ``OKTA_API_TOKEN`` for the first, one-org runs).
    """
    servers, env, urls = [], dict(os.environ), []
    with tempfile.TemporaryDirectory(prefix="okta-demo-") as tmp:
        try:
            for i, extra in enumerate(server_extras):
                token = secrets.token_urlsafe(24)
                token_file = Path(tmp) / f"token-{i}"
                token_file.write_text(token)
                token_file.chmod(0o600)
                ready = Path(tmp) / f"ready-{i}"
                events = args.events if i == 0 else max(args.events // 2, 1)  # the second org is smaller
                servers.append(start_server(events, args.days, token_file, ready, args.rate_limit, extra,
                                            seed=7 + i))
                urls.append(ready.read_text().strip())
                env[f"DEMO_ORG{i}_TOKEN"] = token
                if i == 0:
                    env["OKTA_API_TOKEN"] = token
            command = [sys.executable, "-m", "pipeline", *pipeline_args(urls, tmp)]
            print("$ " + " ".join(command), flush=True)
            run = subprocess.run(command, env=env)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
    if run.returncode != 0:
        return run.returncode
    print(report(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
