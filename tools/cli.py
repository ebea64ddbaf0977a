"""``okta-personal-lake COMMAND [ARGS]``: the run and the tools beside it, one command (also ``python -m tools``).

- ``run [pipeline options]``: a run of the pipeline, as ``python -m pipeline`` (``run --help`` lists them);
- ``coverage --output=LAKE [...]``: which ranges of which Okta org a lake provably holds (:mod:`tools.coverage`);
- ``audit --output=LAKE --since=... [...]``: whether every event Okta holds for those hours is in the lake, and
  ``--repair`` (:mod:`tools.audit`);
- ``maintain --iceberg_table=NS.TABLE [...]``: compact, expire snapshots, remove orphans (:mod:`tools.maintain`);
- ``report LAKE``: what is in a local lake, asked of DuckDB (:mod:`tools.report`).

Each command gets the rest of the command line as it is and exits with its own code (2: bad
options). Only ``run`` and ``audit --repair`` (whose repair is a run) use the pipeline: the tools never need the run's
wiring otherwise.
"""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "run": "run the pipeline: a backfill, an incremental run, a file replay or a streaming tail",
    "coverage": "which ranges of which Okta org a lake provably holds, its gaps and failed runs",
    "audit": "whether every event Okta holds for closed hours is in the lake, per org, hour and type; --repair",
    "maintain": "compact the Iceberg table, expire its old snapshots, remove orphan files",
    "report": "rows and events per org, event type and day of a local lake (DuckDB)",
}


def run(argv: list[str]) -> int:
    """The pipeline, as ``python -m pipeline`` runs it (its exit leaves the run's objects to the OS)."""
    from pipeline.main import exit_without_collecting, main

    exit_without_collecting(main(argv))
    return 0  # not reached: exit_without_collecting exits


def coverage(argv: list[str]) -> int:
    from tools.coverage.cli import main

    return main(argv)


def audit(argv: list[str]) -> int:
    from tools.audit.cli import main

    return main(argv, runner=repair_run)


def repair_run(argv: list[str]) -> int:
    """An audit's repair: ``python -m pipeline ARGV`` in this process, its summary on stderr (stdout is the audit's
    report, JSON with --format=json)."""
    import contextlib

    from pipeline.main import main

    with contextlib.redirect_stdout(sys.stderr):
        return main(argv)


def maintain(argv: list[str]) -> int:
    from tools.maintain import main

    return main(argv)


def report(argv: list[str]) -> int:
    from tools.report import main

    return main(argv)


HANDLERS = {"run": run, "coverage": coverage, "audit": audit, "maintain": maintain, "report": report}


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(
        prog="okta-personal-lake",
        description="Okta System Log personal.* events into a Parquet lake, and the tools beside it.",
        epilog="okta-personal-lake COMMAND --help: the options of one command.")
    commands = out.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in HANDLERS:
        return HANDLERS[argv[0]](argv[1:])
    parser().parse_args(argv)  # --help (exit 0), or no command or an unknown one (exit 2), with argparse's message
    return 2
