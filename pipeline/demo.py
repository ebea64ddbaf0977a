"""``python -m pipeline.demo``: what ``make run`` does, with no Okta org and no cloud account.

1. starts the local System Log server (``python -m emulator``) on a free
   loopback port with a few days of generated events, a random API token and
   a realistic rate limit;
2. runs a backfill of those days against it (``python -m pipeline
   --source=okta --since ... --until ...``), the token passed the way users
   pass theirs (the ``OKTA_API_TOKEN`` variable);
3. stops the server and shows the lake with DuckDB.

With ``--streaming`` (``make run-streaming``) the server keeps appending
events (a few persisted late) and the pipeline tails it (``--streaming
--source=okta --state ...``) for ``--minutes``, printing a line per
committed window, before the same report.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.lake_report import report
from sources.okta_polling import rfc3339


def start_server(events: int, days: int, token_file: Path, ready_file: Path, rate_limit: int,
                 extra: tuple = ()) -> subprocess.Popen:
    command = [sys.executable, "-m", "emulator", "--generate", str(events), "--days", str(days),
               "--seed", "7", "--port", "0", "--token-file", str(token_file), "--ready-file", str(ready_file),
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
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.splitlines()[0])
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

        def pipeline_args(url: str) -> list[str]:
            return ["--streaming", "--source=okta", f"--okta_org_url={url}",
                    f"--state={Path(args.output).resolve()}-cursor.json", f"--output={args.output}",
                    f"--lookback={args.days}d", "--window=30s", "--poll_interval=5s",
                    f"--stop_after={int(args.minutes * 60)}s"]
    else:
        server_extra = ()

        def pipeline_args(url: str) -> list[str]:
            until = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0) + _dt.timedelta(minutes=1)
            since = until - _dt.timedelta(days=args.days, minutes=2)
            return ["--source=okta", f"--okta_org_url={url}", f"--since={rfc3339(since)}",
                    f"--until={rfc3339(until)}", "--slice=6h", f"--output={args.output}"]

    return run_against_server(args, server_extra, pipeline_args)


def run_against_server(args, server_extra: tuple, pipeline_args) -> int:
    """Start the server, run ``python -m pipeline`` with ``pipeline_args(url)``, stop it, show the lake."""
    with tempfile.TemporaryDirectory(prefix="okta-demo-") as tmp:
        token = secrets.token_urlsafe(24)
        token_file = Path(tmp) / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        ready = Path(tmp) / "ready"
        server = start_server(args.events, args.days, token_file, ready, args.rate_limit, server_extra)
        try:
            command = [sys.executable, "-m", "pipeline", *pipeline_args(ready.read_text().strip())]
            print("$ " + " ".join(command), flush=True)
            run = subprocess.run(command, env={**os.environ, "OKTA_API_TOKEN": token})
        finally:
            server.terminate()
            server.wait(timeout=30)
    if run.returncode != 0:
        return run.returncode
    print(report(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
