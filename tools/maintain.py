"""``okta-personal-lake maintain --iceberg_table=NS.TABLE [catalog options]``: compact, expire, remove orphans.

Safe while the pipeline commits (see :mod:`sinks.iceberg.maintenance`). Run it daily, e.g.
from cron or Cloud Scheduler; ``make maintain TABLE=okta.events LAKE=lake`` runs it on the
default embedded catalog (``python -m tools.maintain`` runs it too). A warehouse on s3:// takes
Beam's S3 options as the pipeline does (``--s3_endpoint_url``, ``--s3_access_key_id``, ...;
:mod:`storage.flags`); gs:// follows ``STORAGE_EMULATOR_HOST`` like the pipeline's lake.
A run makes at most one snapshot, the compaction's, recording the run's id (``--run_id``, default
a new one) as ``okta-lake.run-id``. Exit codes: 0 done, 1 failed (one line), 2 bad options.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys

from common import logs
from common.durations import parse_duration
from sinks.iceberg.settings import add_flags as add_iceberg_flags
from storage.flags import use_storage_flags

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")  # as a pipeline run's


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(prog="okta-personal-lake maintain", description=__doc__.splitlines()[0])
    out.add_argument("--output", help="The lake, beside which the default sqlite catalog's warehouse is "
                                      "(OUTPUT/_iceberg); not needed with --iceberg_warehouse.")
    add_iceberg_flags(out)
    out.add_argument("--target_file_mb", type=int, default=128,
                     help="Compact partitions with more than one file smaller than this into files of about "
                          "this size (default 128).")
    out.add_argument("--retention", default="7d",
                     help="Expire snapshots older than this (default 7d): time travel reaches back this far.")
    out.add_argument("--orphan_age", default="1d",
                     help="Remove unreferenced files only when older than this (default 1d), so files a "
                          "writer is about to commit are never touched.")
    out.add_argument("--run_id", help="This maintenance run's id, recorded in its snapshot as okta-lake.run-id "
                                      "(default: a new one, like a pipeline run's: 20261201T154000Z-a1b2c3).")
    out.add_argument("--skip", action="append", choices=("compact", "expire", "orphans"), default=[],
                     help="Leave out a step (repeatable).")
    return out


def main(argv: list[str] | None = None) -> int:
    from sinks.iceberg.maintenance import MaintenanceReport, new_run_id
    from sinks.iceberg.settings import problems_of, target_from_options

    options = parser()
    args, rest = options.parse_known_args(argv)
    # Beam's S3 options: the warehouse's store is reached as the lake's is. Nothing else passes.
    errors = use_storage_flags(rest, [o for action in options._actions for o in action.option_strings])
    target = target_from_options(args)
    errors += ["--iceberg_table is required"] if target is None else problems_of(target)
    try:
        retention = parse_duration(args.retention, "--retention")
        orphan_age = parse_duration(args.orphan_age, "--orphan_age")
    except ValueError as exc:
        errors.append(str(exc))
    if args.target_file_mb < 1:
        errors.append("--target_file_mb must be at least 1")
    if args.run_id is not None and not RUN_ID.fullmatch(args.run_id):
        errors.append("--run_id must be 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    report = MaintenanceReport(run_id=args.run_id or new_run_id())
    with logs.formatted("text", report.run_id):  # pyiceberg's own lines (a commit retried) in the run's format
        return _maintain(target, args, retention, orphan_age, report)


def _maintain(target, args, retention, orphan_age, report) -> int:
    from sinks.iceberg.catalog import IcebergConfigError
    from sinks.iceberg.maintenance import compact, expire_snapshots, remove_orphan_files
    from sinks.iceberg.table import connect

    try:
        catalog = connect(target)
        catalog.load_table(target.table)
        if "compact" not in args.skip:
            compact(catalog, target.table, args.target_file_mb * 1024 * 1024, report)
        if "expire" not in args.skip:
            expire_snapshots(catalog, target.table, _dt.datetime.now(_dt.timezone.utc) - retention, report)
        if "orphans" not in args.skip:
            remove_orphan_files(catalog, target.table, orphan_age, report)
    except IcebergConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"error: maintenance of {target.table} failed: {exc.__class__.__name__}: {text}", file=sys.stderr)
        return 1
    print(f"{target.table}: {report.render()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
