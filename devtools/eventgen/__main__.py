"""``python -m devtools.eventgen --events N --output FILE``: write a realistic System Log export.

The export is JSON Lines (``.gz`` when the name ends so), deterministic for
a seed, with about a quarter Okta Personal events, 0-3 targets each, a few
re-sent events (Okta delivers at least once) and a few bad lines.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys

from devtools.eventgen.generator import export_lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.eventgen", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to generate (default 20000)")
    parser.add_argument("--output", required=True, help="file to write (.jsonl or .jsonl.gz)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--start", default="2026-11-17T00:00:00Z", help="first published time")
    parser.add_argument("--end", default="2026-11-20T00:00:00Z", help="published times end before this")
    parser.add_argument("--days", type=float, default=0,
                        help="spread the events over this many days from --start (overrides --end)")
    parser.add_argument("--random_order", action="store_true",
                        help="write events in random published order (default: sorted by published)")
    parser.add_argument("--types", type=int, default=0,
                        help="distinct event types in the export, personal ones included (default 12; up to 73)")
    parser.add_argument("--personal_share", type=float, default=0.25, help="share of personal.* events")
    parser.add_argument("--duplicate_rate", type=float, default=0.005, help="share of re-sent events")
    parser.add_argument("--bad_line_rate", type=float, default=0.0005, help="share of bad lines")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    opener = gzip.open if args.output.endswith(".gz") else open
    end = args.end
    if args.days:
        from devtools.eventgen.generator import _format_us, _to_us

        end = _format_us(_to_us(args.start) + int(args.days * 86_400_000_000))
    lines = 0
    with opener(args.output, "wb") as out:
        for line in export_lines(args.events, seed=args.seed, duplicate_rate=args.duplicate_rate,
                                 bad_line_rate=args.bad_line_rate, start=args.start, end=end,
                                 personal_share=args.personal_share, types=args.types,
                                 published_sorted=not args.random_order):
            out.write(line + b"\n")
            lines += 1
    print(f"wrote {lines:,} lines ({args.events:,} events plus re-sent and bad lines) to {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
