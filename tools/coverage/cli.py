"""The command line of ``okta-personal-lake coverage`` (and ``python -m tools.coverage``): options, then
the report on stdout in the chosen format; the exit code says whether the requested range has a gap."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys

from common.durations import parse_when
from storage.flags import use_storage_flags
from tools.coverage.analysis import UTC, report
from tools.coverage.html_report import render_html
from tools.coverage.text_report import render_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="okta-personal-lake coverage",
        description="Which [since, until) ranges of which Okta org the lake's committed runs cover, the gaps "
                    "between them and the runs that failed. Exit 0: no gap in the requested range; 1: a gap; "
                    "2: bad options.")
    parser.add_argument("--output", required=True, help="the lake (local folder, gs:// or s3://)")
    parser.add_argument("--okta_org_url", action="append", default=[],
                        help="report this org only (repeatable); default: every org recorded in the lake")
    parser.add_argument("--since", help="start of the range that must be covered: RFC 3339, or a duration "
                                        "back from now like 26h")
    parser.add_argument("--until", help="end of that range (exclusive); default now")
    parser.add_argument("--format", choices=("text", "json", "html"), default="text")
    args, rest = parser.parse_known_args(argv)
    # A lake in a bucket is read with the run's storage options (--s3_endpoint_url, ...); nothing else passes.
    if problems := use_storage_flags(rest, [o for action in parser._actions for o in action.option_strings]):
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    now = _dt.datetime.now(UTC)
    try:
        since = parse_when(args.since, "--since", now) if args.since else None
        until = parse_when(args.until, "--until", now) if args.until else (now if since else None)
        orgs = [normalised(o) for o in args.okta_org_url]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if until is not None and since is None:
        print("error: --until needs --since", file=sys.stderr)
        return 2
    if since is not None and since >= until:
        print("error: --until must be after --since", file=sys.stderr)
        return 2
    from storage import fs

    lake = args.output.rstrip("/")
    if fs.is_local(lake) and not fs.exists(lake):
        print(f"error: --output {lake}: no such lake", file=sys.stderr)
        return 2
    result = report(lake, orgs or None, since, until)
    render = {"json": lambda r: json.dumps(r, indent=2), "html": render_html, "text": render_text}[args.format]
    print(render(result))
    return result["exit_code"]


def normalised(url: str) -> str:
    from okta_client.errors import UnsafeUrl
    from okta_client.urls import normalise_org_url

    try:
        return normalise_org_url(url)
    except UnsafeUrl as exc:
        raise ValueError(f"--okta_org_url: {exc}") from None
