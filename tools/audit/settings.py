"""The audit's options, their checks, and the frozen :class:`AuditSettings`.

The audit takes a run's own options for what it compares and how it reaches Okta, declared and checked by
the components that own them, so it reads the same orgs, credentials and selection a run would: the lake
(``--output``, ``--dead_letter``), decoding (``--event_types``), the Okta API (``--okta_org_url`` or
``--orgs``, credentials, ``--okta_rate_share``, ``--okta_filter_pushdown``, ``--okta_page_limit``), BigQuery
and Iceberg. With ``--repair`` the repair backfill gets exactly those options (:mod:`tools.audit.repair`).
Its own: ``--since`` / ``--until`` (widened to whole UTC hours), ``--settle``, ``--repair``,
``--skip_clean``, ``--format``, ``--metrics_file``; besides them only Beam's ``--s3_*`` options.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import secrets
from dataclasses import dataclass

from common.durations import parse_duration, parse_when, rfc3339
from common.flags import bool_flag
from sinks.bigquery import settings as bigquery_settings
from sinks.iceberg import settings as iceberg_settings
from sinks.iceberg.settings import IcebergTarget
from sinks.lake import settings as lake_settings
from sinks.lake.settings import LakeSettings
from sources.okta import settings as okta_settings
from sources.okta.settings import OktaSourceSettings
from storage.flags import split_storage_flags
from tools.audit.hours import ceil_hour, floor_hour
from transforms import settings as decode_settings

#: Okta returns no event older than this: such hours cannot be audited.
RETENTION = _dt.timedelta(days=90)
#: The component groups whose options the audit takes, and passes on to a repair backfill.
GROUPS = (lake_settings.add_flags, decode_settings.add_flags, okta_settings.add_flags,
          bigquery_settings.add_flags, iceberg_settings.add_flags)
#: Options of those groups a repair backfill does not take from the audit (it gets its own range).
NOT_PASSED_ON = ("since", "until", "orgs", "state", "lookback")


@dataclass(frozen=True)
class AuditSettings:
    audit_id: str
    lake: LakeSettings
    okta: OktaSourceSettings  # the orgs, each with its credential reference, selection and rate share
    iceberg: IcebergTarget | None
    since: _dt.datetime  # the first hour
    until: _dt.datetime  # the end of the last hour
    settle: _dt.timedelta
    now: _dt.datetime
    repair: bool = False
    skip_clean: bool = False
    format: str = "text"
    metrics_file: str | None = None
    repair_flags: tuple[str, ...] = ()  # the component options as given, for a repair backfill
    storage_flags: tuple[str, ...] = ()  # --s3_* options


def new_audit_id(now: _dt.datetime) -> str:
    return f"audit-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def parser() -> argparse.ArgumentParser:
    # "resolve": the audit's own --since / --until replace the backfill's of the Okta group.
    out = argparse.ArgumentParser(
        prog="okta-personal-lake audit", conflict_handler="resolve",
        description="Compare, per org, closed hour and event type, the uuids Okta holds with the lake's (and the "
                    "Iceberg table's): present, missing, unexpected. Exit 0: nothing missing; 1: events missing "
                    "(or an org failed for good); 2: bad options; 75: an org could not be audited now.")
    for add_group in GROUPS:
        add_group(out)
    audit = out.add_argument_group("The audit")
    audit.add_argument("--since",
                       help="Required: the start of the range to audit: RFC 3339, or a duration back from now like "
                            "26h (widened to the start of its UTC hour); at most 90 days back (Okta's retention).")
    audit.add_argument("--until", help="End of the range (exclusive; widened to the end of its hour); default now. "
                                       "Only hours that ended --settle ago are audited.")
    audit.add_argument("--settle", default="1h",
                       help="Audit an hour only once it ended this long ago (default 1h): Okta may persist an "
                            "event late, and a bounded request misses it until then.")
    bool_flag(audit, "--repair", False,
              "Commit the missing events: a backfill (run kind repair) of exactly the hours with missing events, "
              "with these options (lake, dead letters, BigQuery, Iceberg), then check them again.")
    bool_flag(audit, "--skip_clean", False,
              "Skip the hours this lake's audit records show audited clean (or repaired) for the same org and "
              "event types: a scheduled audit then asks Okta only for new hours and ones not clean yet.")
    audit.add_argument("--format", choices=("text", "json"), default="text")
    audit.add_argument("--metrics_file",
                       help="Also write the audit's Prometheus series to this file (node_exporter's textfile "
                            "collector format; written whole, then renamed into place).")
    for name, default in (("--state", None), ("--lookback", "7d")):  # a run's, not the audit's: refused below
        audit.add_argument(name, default=default, help=argparse.SUPPRESS)
    return out


def _component_actions() -> list[argparse.Action]:
    components = argparse.ArgumentParser(add_help=False)
    for add_group in GROUPS:
        add_group(components)
    return [a for a in components._actions if a.option_strings and a.dest not in NOT_PASSED_ON]  # noqa: SLF001


def passed_on(args) -> tuple[str, ...]:
    """The component options given (not at their defaults), as ``--name=value``, for a repair backfill."""
    flags = []
    for action in _component_actions():
        value = getattr(args, action.dest)
        if value is None or value == action.default:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        flags.append(f"{action.option_strings[0]}={text}")
    return tuple(flags)


def resolve(argv: list[str], now: _dt.datetime | None = None) -> tuple[AuditSettings | None, list[str]]:
    """``(settings, [])`` or ``(None, problems)`` with every problem of the options, one line each."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    options = parser()
    args, rest = options.parse_known_args(argv)
    known = [o for action in options._actions for o in action.option_strings]  # noqa: SLF001
    storage_flags, problems = split_storage_flags(rest, known)
    if args.state or args.lookback != "7d":
        problems.append("--state and --lookback are an incremental run's, not the audit's: it reads "
                        "[--since, --until)")
    if not args.since:
        return None, problems + ["--since is required: the start of the range to audit (RFC 3339, or a duration "
                                 "back from now like 26h)"]
    try:
        since = floor_hour(parse_when(args.since, "--since", now))
        until = ceil_hour(parse_when(args.until, "--until", now) if args.until else now)
        settle = parse_duration(args.settle, "--settle")
    except ValueError as exc:
        return None, problems + [str(exc)]
    if since >= until:
        problems.append("--until must be after --since")
    if since < now - RETENTION:
        problems.append(f"--since {rfc3339(since)} is more than 90 days back: Okta keeps 90 days of events, so "
                        "older hours cannot be audited")
    args.since, args.until = rfc3339(since), rfc3339(until)  # what the Okta settings check, as a backfill's
    lake = lake_settings.resolve(args, problems)
    decode_settings.resolve(args, problems, source="okta")
    okta = okta_settings.resolve(args, problems, streaming=False, iceberg=bool(args.iceberg_table), local=True,
                                 now=now)
    iceberg = iceberg_settings.resolve(args, problems, lake=lake.root if lake else None, on_dataflow=False)
    bigquery_settings.resolve(args, problems, raw_event=args.raw_event)
    if problems:
        return None, problems
    return AuditSettings(
        audit_id=new_audit_id(now), lake=lake, okta=okta, iceberg=iceberg, since=since, until=until, settle=settle,
        now=now, repair=args.repair, skip_clean=args.skip_clean, format=args.format,
        metrics_file=args.metrics_file, repair_flags=passed_on(args), storage_flags=tuple(storage_flags)), []
