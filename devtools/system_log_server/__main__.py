"""``python -m devtools.system_log_server``: run the Okta System Log API stand-in until SIGTERM or Ctrl-C.

The SSWS API token is read from ``--token-file`` or the ``OKTA_EMULATOR_TOKEN``
environment variable, never from a flag value (flags show up in ``ps``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from devtools.system_log_server.config import EmulatorConfig
from devtools.system_log_server.server import SystemLogServer

TOKEN_ENV = "OKTA_EMULATOR_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m devtools.system_log_server",
        description="A local stand-in for Okta's System Log API (GET /api/v1/logs, POST /oauth2/v1/token).",
        epilog=f"The SSWS token comes from --token-file or ${TOKEN_ENV}; without a token or OAuth settings, "
               "no authentication is required.")

    net = parser.add_argument_group("server")
    net.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    net.add_argument("--port", type=int, default=defaults.port, help="port; 0 picks a free one (default 0)")
    net.add_argument("--ready-file", metavar="PATH", help="write the base URL to PATH once listening")
    net.add_argument("--stats-file", metavar="PATH",
                     help="on exit, write what /api/v1/logs saw (each request's time and status) as JSON")

    data = parser.add_argument_group("events")
    data.add_argument("--events-file", metavar="PATH", help="JSON Lines file of LogEvents to serve (.gz too)")
    data.add_argument("--generate", type=int, default=defaults.generate, metavar="N",
                      help="generate N events with the project's event generator (default 0)")
    data.add_argument("--days", type=float, default=defaults.days, metavar="D",
                      help="generated events are published over the last D days (default %(default)s)")
    data.add_argument("--seed", type=int, default=defaults.seed, help="generator seed (default %(default)s)")
    data.add_argument("--personal-share", type=float, default=defaults.personal_share, metavar="SHARE",
                      help="share of personal.* events generated (default %(default)s)")
    data.add_argument("--append-rate", type=float, default=defaults.append_rate, metavar="PER_SECOND",
                      help="stream this many new events per second, published now (default 0: off)")
    data.add_argument("--late-fraction", type=float, default=defaults.late_fraction, metavar="SHARE",
                      help="share of events persisted --late-seconds after they are published (default 0)")
    data.add_argument("--late-seconds", type=float, default=defaults.late_seconds, metavar="SECONDS",
                      help="delay of late-persisted events (default %(default)s)")

    auth = parser.add_argument_group("authentication")
    auth.add_argument("--token-file", metavar="PATH", help=f"file holding the SSWS API token (else ${TOKEN_ENV})")
    auth.add_argument("--oauth-client-id", metavar="ID", help="client id of the OAuth service app")
    auth.add_argument("--oauth-public-key-file", metavar="PATH",
                      help="the service app's public key: PEM, or a JWK as JSON (RSA -> RS256, EC P-256 -> ES256)")
    auth.add_argument("--oauth-scopes", default=",".join(defaults.oauth_scopes), metavar="SCOPES",
                      help="comma-separated scopes granted to the service app (default %(default)s)")
    auth.add_argument("--token-ttl", type=int, default=defaults.token_ttl, metavar="SECONDS",
                      help="lifetime of issued access tokens (default %(default)s)")
    auth.add_argument("--require-dpop", action="store_true", help="the service app requires DPoP (RFC 9449)")

    limits = parser.add_argument_group("rate limits")
    limits.add_argument("--rate-limit", type=int, default=defaults.rate_limit, metavar="N",
                        help="requests to /api/v1/logs per window (default 0: unlimited)")
    limits.add_argument("--rate-window-seconds", type=int, default=defaults.rate_window_seconds, metavar="SECONDS",
                        help="rate-limit window, aligned on multiples of it in epoch seconds (default %(default)s)")
    limits.add_argument("--concurrency-limit", type=int, default=defaults.concurrency_limit, metavar="N",
                        help="most requests in flight; more get 429 with X-Rate-Limit-Limit: 0 (default 0: no cap)")

    faults = parser.add_argument_group("faults (probabilities per /api/v1/logs request)")
    faults.add_argument("--fault-seed", type=int, metavar="SEED", help="seed for reproducible faults")
    faults.add_argument("--fault-5xx", type=float, default=0.0, metavar="P", help="502/503/504 from a proxy")
    faults.add_argument("--fault-reset", type=float, default=0.0, metavar="P", help="connection reset (TCP RST)")
    faults.add_argument("--fault-truncate", type=float, default=0.0, metavar="P",
                        help="body cut short after the headers")
    faults.add_argument("--fault-timeout", type=float, default=0.0, metavar="P", help="500 E0000009")
    faults.add_argument("--fault-slow", type=float, default=0.0, metavar="P", help="answer after --slow-seconds")
    faults.add_argument("--slow-seconds", type=float, default=defaults.slow_seconds, metavar="SECONDS",
                        help="delay of slow answers (default %(default)s)")
    faults.add_argument("--timeout-events", type=int, default=defaults.timeout_events, metavar="N",
                        help="500 E0000009 for a first bounded request matching more than N events "
                             "(Okta's 30 s query timeout; default 0: off)")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The configuration the flags describe; ValueError for an unreadable file or a bad combination."""
    token = Path(args.token_file).read_text().strip() if args.token_file else os.environ.get(TOKEN_ENV)
    if args.token_file and not token:
        raise ValueError(f"--token-file {args.token_file} is empty")
    config = EmulatorConfig(
        host=args.host, port=args.port,
        events_file=args.events_file, generate=args.generate, days=args.days, seed=args.seed,
        personal_share=args.personal_share, append_rate=args.append_rate, late_fraction=args.late_fraction,
        late_seconds=args.late_seconds,
        token=token or None, oauth_client_id=args.oauth_client_id,
        oauth_public_key=Path(args.oauth_public_key_file).read_text() if args.oauth_public_key_file else None,
        oauth_scopes=tuple(scope for scope in args.oauth_scopes.split(",") if scope), token_ttl=args.token_ttl,
        require_dpop=args.require_dpop,
        rate_limit=args.rate_limit, rate_window_seconds=args.rate_window_seconds,
        concurrency_limit=args.concurrency_limit,
        fault_seed=args.fault_seed, fault_5xx=args.fault_5xx, fault_reset=args.fault_reset,
        fault_truncate=args.fault_truncate, fault_timeout=args.fault_timeout, fault_slow=args.fault_slow,
        slow_seconds=args.slow_seconds, timeout_events=args.timeout_events,
    )
    config.validate()
    return config


def write_stats(server: SystemLogServer, path: str) -> None:
    """What the server saw, as JSON: per request its arrival (seconds since the first) and status."""
    stats = server.stats
    first = stats.records[0].at if stats.records else 0.0
    to_epoch = time.time() - time.monotonic()  # records carry monotonic times; windows are epoch-aligned
    data = {"requests": stats.requests, "by_status": {str(k): v for k, v in stats.by_status.items()},
            "token_requests": stats.token_requests,
            "records": [{"at": round(r.at - first, 4), "epoch": round(r.at + to_epoch, 4), "status": r.status}
                        for r in stats.records]}
    Path(path).write_text(json.dumps(data))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = SystemLogServer(config).start()
    except (OSError, ValueError) as error:
        parser.error(str(error))
    if server.skipped_lines:
        print(f"skipped {server.skipped_lines} lines of {config.events_file} that are not LogEvents",
              file=sys.stderr)
    print(f"listening on {server.url} ({server.event_count} events)", file=sys.stderr, flush=True)
    if args.ready_file:
        partial = Path(args.ready_file + ".partial")
        partial.write_text(server.url + "\n")
        partial.replace(args.ready_file)  # atomic: a watcher never reads half a URL
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        if args.stats_file:
            write_stats(server, args.stats_file)
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
