"""Every option of the pipeline, once, with its help text, and their validation.

The README's option table, and later the Flex Template's ``metadata.json``,
are generated from / checked against :class:`LakeOptions`. Options that take
a yes/no accept ``--flag``, ``--flag=true`` and ``--flag=false`` (Flex
Templates pass every parameter as ``--name=value``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re

from apache_beam.options.pipeline_options import PipelineOptions

from common.durations import parse_duration, parse_time
from sinks.iceberg import settings as iceberg_settings
from transforms.selection import DEFAULT_EVENT_TYPES, EventTypeSelection

SOURCES = ("file", "okta", "pubsub")


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def bool_flag(parser, name: str, default: bool, help: str) -> None:
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)


def add_lake_group(parser) -> None:
    """Declare the group on ``parser`` (an ``argparse`` parser, or Beam's)."""
    group = parser.add_argument_group("Okta Personal lake")
    group.add_argument(
        "--source", choices=SOURCES, default="file",
        help="Where events come from: file (replay exported System Log files), okta (the System Log "
             "API: a --since/--until backfill, an incremental run from --state, or with --streaming a "
             "continuous tail) or pubsub (a Pub/Sub subscription, with --streaming).")
    group.add_argument(
        "--input", action="append", default=None,
        help="Glob of exported files to replay (local, gs://, s3://); JSON Lines (.gz too), "
             "JSON arrays (saved /api/v1/logs pages) and Event Hook envelopes, mixed freely. "
             "Repeat the flag or separate globs with commas for several.")
    group.add_argument(
        "--output",
        help="Lake URI (local folder, gs://bucket/path or s3://bucket/path). Rows land in "
             "OUTPUT/event_date=YYYY-MM-DD/event_type=TYPE/*.parquet.")
    group.add_argument(
        "--dead_letter", default=None,
        help="Where dead-letter records go, as JSON Lines under DEAD_LETTER/RUN_ID/ "
             "(default: OUTPUT/_dead_letter).")
    group.add_argument(
        "--event_types", default=DEFAULT_EVENT_TYPES,
        help="Comma-separated event types to keep; a pattern ending in * is a prefix "
             "(default: personal.*, so future personal types flow in).")
    bool_flag(group, "--raw_event", True,
               "Store each event's original JSON in the raw_event column (default true).")
    group.add_argument(
        "--compression", choices=("zstd", "snappy"), default="zstd",
        help="Parquet compression codec (default zstd).")
    group.add_argument(
        "--batch_size", type=int, default=1000,
        help="Events per pipeline element (default 1000, an Okta page).")
    group.add_argument(
        "--decode_processes", type=int, default=0,
        help="A local run of --source=file decodes and flattens uncompressed local JSON Lines in this "
             "many processes (default 0: one per usable core; 1: in the pipeline's own process). "
             "Ignored on Dataflow, where the file ranges spread over the workers.")
    group.add_argument(
        "--max_dead_letter_payload_bytes", type=int, default=16 * 1024 * 1024,
        help="Cut dead-letter payloads longer than this many bytes (flagged in the record; "
             "default 16 MiB).")
    group.add_argument(
        "--okta_org", default=None,
        help="Host of the Okta org the events of --source=file or pubsub came from, e.g. acme.okta.com: "
             "fills the okta_org column (a Pub/Sub message's okta_org attribute wins). API sources "
             "take it from the org URL. Default: null.")
    group.add_argument(
        "--run_id", default=None,
        help="Name of this run in file names, the dead-letter folder and OUTPUT/_runs/ "
             "(default: UTC start time plus a random suffix).")
    group.add_argument(
        "--progress_interval", type=float, default=10.0,
        help="Seconds between progress lines on stderr in local runs (0 turns them off).")
    bool_flag(group, "--quiet", False, "No progress lines; only errors and the summary.")
    bool_flag(group, "--verbose", False,
               "Also show Beam's own log lines (warnings, worker tracebacks); by default a failed run "
               "prints one line naming the cause.")


def split_patterns(values: list[str] | None) -> list[str]:
    """The --input globs: every value of the repeated flag, split at commas."""
    patterns: list[str] = []
    for value in values or []:
        patterns += [p.strip() for p in value.split(",") if p.strip()]
    return patterns


class LakeOptions(PipelineOptions):
    """Options of the Okta Personal lake pipeline (Beam's own options also apply)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        add_lake_group(parser)

        okta = parser.add_argument_group("Okta System Log API (--source=okta)")
        okta.add_argument(
            "--okta_org_url",
            help="The org, e.g. https://acme.okta.com (https required; http only for a loopback test server).")
        okta.add_argument(
            "--orgs",
            help="Read many orgs in one run: a YAML or JSON file (local, gs://, s3://) listing each org's url, "
                 "credential reference (token_env, token_file, or client_id with private_key_file / "
                 "private_key_env; never a secret itself), and optionally rate_share, event_types and state "
                 "(default: the --state folder/<host>.json). Instead of --okta_org_url and the --okta_token_file "
                 "/ --okta_client_id family; see the README.")
        okta.add_argument(
            "--since",
            help="Backfill start, RFC 3339 (e.g. 2026-11-01T00:00:00Z); at most 180 days back. "
                 "With --until: read exactly [since, until).")
        okta.add_argument("--until", help="Backfill end, RFC 3339, exclusive; must be after --since.")
        okta.add_argument(
            "--slice", default="1h",
            help="Length of the time slices a backfill is cut into and read in parallel (e.g. 15m, 1h, 1d).")
        okta.add_argument(
            "--state",
            help="Cursor file for incremental runs (local path, gs://, s3://). Without --since, a run resumes "
                 "the polling chain from it, reads until caught up, commits the lake, then stores the new "
                 "cursor. Optional with --iceberg_table (one org): the run then resumes from the newest cursor "
                 "the table's snapshots record, which wins over --state when both are given (the table holds "
                 "the data; re-read events are skipped). With --orgs: the folder of the orgs' cursor files.")
        okta.add_argument(
            "--lookback", default="7d",
            help="How far back the first incremental run starts when neither --state nor the Iceberg table holds "
                 "a cursor yet.")
        okta.add_argument(
            "--okta_rate_share", type=float, default=1.0,
            help="Largest share of the org's /api/v1/logs rate limit this pipeline may use (0-1], so other "
                 "integrations keep working, e.g. 0.5.")
        okta.add_argument(
            "--okta_token_file",
            help="Where the SSWS API token is: a file (local, gs://, s3://) or a Secret Manager secret "
                 "(projects/P/secrets/S[/versions/V]). Default: the OKTA_API_TOKEN environment variable. "
                 "Tokens are never accepted as option values.")
        okta.add_argument(
            "--okta_client_id",
            help="OAuth 2.0 service app client id: use private_key_jwt instead of an API token.")
        okta.add_argument(
            "--okta_private_key_file",
            help="Where the service app's private key (PEM or JWK) is: a file (local, gs://, s3://) or a "
                 "Secret Manager secret (projects/P/secrets/S[/versions/V]). Default: the "
                 "OKTA_OAUTH_PRIVATE_KEY environment variable.")
        okta.add_argument("--okta_key_id", help="The kid of the service app's key (optional for a JWK with kid).")
        okta.add_argument("--okta_scopes", default="okta.logs.read", help="OAuth scopes, space separated.")
        bool_flag(okta, "--okta_dpop", False, "The service app requires DPoP-bound tokens (RFC 9449).")
        bool_flag(okta, "--okta_filter_pushdown", True,
                   "Send the --event_types selection to Okta as a SCIM filter (the pipeline checks types "
                   "again either way).")
        okta.add_argument("--okta_page_limit", type=int, default=1000, help="Events per page asked of Okta (1-1000).")

        bq = parser.add_argument_group("BigQuery (optional, with or instead of reading the lake directly)")
        bq.add_argument(
            "--bigquery_table",
            help="Also write the rows to this BigQuery table, PROJECT:DATASET.TABLE (created if missing: DAY "
                 "partitioned on published, clustered by event_type and actor_id). Batch runs merge the "
                 "touched lake partitions in with a load job + MERGE (no duplicates on reruns); streaming "
                 "runs use streaming inserts.")
        bq.add_argument(
            "--bigquery_endpoint",
            help="Base URL of a BigQuery emulator (tests, local trials); default: BigQuery itself.")

        iceberg_settings.add_flags(parser)
        add_monitoring_args(parser)

        stream = parser.add_argument_group("Streaming (--streaming with --source=okta or --source=pubsub)")
        stream.add_argument(
            "--subscription",
            help="Pub/Sub subscription to read, projects/PROJECT/subscriptions/NAME (--source=pubsub). A "
                 "message holds a LogEvent, a JSON array of them, an Event Hook or an EventBridge envelope.")
        stream.add_argument(
            "--pubsub_reader", choices=["client", "beam"], default="client",
            help="How the local runner reads Pub/Sub: client pulls with google-cloud-pubsub and acknowledges "
                 "a window's messages only after it is committed (a killed run loses nothing); beam runs "
                 "Beam's ReadFromPubSub graph, the one Dataflow runs (locally it acknowledges on pull).")
        stream.add_argument(
            "--id_label",
            help="Pub/Sub attribute with a unique message id, for Dataflow's own dedupe (the local loop "
                 "dedupes on the events' uuid only).")
        stream.add_argument(
            "--timestamp_attribute",
            help="Pub/Sub attribute holding the event time (RFC 3339 or epoch ms); default: publish time.")
        stream.add_argument(
            "--window", default="5m",
            help="Length of the lake's write windows in streaming (e.g. 1m, 5m): each window's rows are "
                 "committed as files named after it.")
        stream.add_argument(
            "--poll_interval", default="60s",
            help="How long the Okta tail waits after an empty page (caught up) before polling again.")
        stream.add_argument(
            "--dedupe_horizon", default="24h",
            help="How long a stream remembers the uuids it wrote, to drop repeats early; repeats older than "
                 "that are still dropped when their window commits (insert-if-absent).")
        stream.add_argument(
            "--stop_after", default=None,
            help="Stop a streaming run after this long (e.g. 2m), for demos and tests; uncommitted rows are "
                 "read again by the next run. Default: run until stopped.")


def add_monitoring_args(parser) -> None:
    monitoring = parser.add_argument_group("Monitoring (local runs)")
    monitoring.add_argument(
        "--metrics_port", type=int, default=None,
        help="Serve Prometheus metrics on this port while a local run (batch or streaming) runs: /metrics (the "
             "okta_personal counters, commit duration, lag, cursor age; label org) and /healthz. 0 picks a free "
             "port (printed). On Dataflow the counters stay Beam metrics.")
    monitoring.add_argument(
        "--metrics_host", default="127.0.0.1",
        help="Address the metrics endpoint listens on (default 127.0.0.1, this machine only; 0.0.0.0 for all).")
    monitoring.add_argument(
        "--healthz_stall", default="10m",
        help="/healthz answers 503 when a streaming run has closed no window, or not reached its source, for "
             "this long (e.g. 10m; at least one --window). A batch run is healthy while it runs.")
    monitoring.add_argument(
        "--log_format", choices=("text", "json"), default="text",
        help="text: human-readable lines on stderr; json: one JSON object per line (severity, message, time, "
             "run_id, logger; the fields Cloud Logging reads), for log shippers.")


def monitoring_problems(options: LakeOptions) -> list[str]:
    errors = []
    if options.metrics_port is not None and not 0 <= options.metrics_port <= 65535:
        errors.append(f"--metrics_port must be between 0 and 65535, got {options.metrics_port}")
    try:
        stall = parse_duration(options.healthz_stall, "--healthz_stall").total_seconds()
    except ValueError as exc:
        return errors + [str(exc)]
    try:
        window = parse_duration(options.window, "--window").total_seconds()
    except ValueError:
        return errors  # reported by the streaming checks
    from apache_beam.options.pipeline_options import StandardOptions

    if options.metrics_port is not None and options.view_as(StandardOptions).streaming and stall < window:
        errors.append(f"--healthz_stall {options.healthz_stall} must be at least one --window ({options.window}), "
                      "or /healthz would report every window as a stall")
    return errors


def iceberg_problems(options: LakeOptions) -> list[str]:
    from apache_beam.options.pipeline_options import StandardOptions

    from sinks.iceberg.settings import problems, target_from_options

    target = target_from_options(options)
    if target is None:
        return []
    standard = options.view_as(StandardOptions)
    if options.iceberg_keep_snapshots < 0:
        return ["--iceberg_keep_snapshots must be 0 or more"]
    runner = str(standard.runner or "").lower()
    if target.catalog == "sqlite" and "dataflow" in runner:
        return ["--iceberg_catalog=sqlite is a file on one machine; on Dataflow use --iceberg_catalog=sql or rest"]
    return problems(target)


def input_patterns(options: LakeOptions) -> list[str]:
    return split_patterns(options.input)


def validate(options: LakeOptions) -> list[str]:
    """Every configuration problem, one clear line each (empty when all is well)."""
    errors: list[str] = []
    if not options.output:
        errors.append("--output is required: the lake folder or gs:// / s3:// URI to write to")
    if options.source == "file" and not input_patterns(options):
        errors.append("--input is required with --source=file: a glob of exported System Log files")
    from apache_beam.options.pipeline_options import StandardOptions

    streaming = bool(options.view_as(StandardOptions).streaming)
    if streaming:
        errors += validate_streaming(options)
    elif options.source == "pubsub":
        errors.append("--source=pubsub needs --streaming")
    if options.source == "okta":
        errors += validate_okta(options, streaming=streaming)
    errors += _local_location_problems(options)
    errors += iceberg_problems(options)
    errors += monitoring_problems(options)
    if options.bigquery_table:
        from sinks.bigquery.client import parse_table_spec

        if not parse_table_spec(options.bigquery_table):
            errors.append(f"--bigquery_table must look like PROJECT:DATASET.TABLE, not {options.bigquery_table!r}")
    try:
        EventTypeSelection.parse(options.event_types)
    except ValueError as exc:
        errors.append(str(exc))
    if options.batch_size < 1 or options.batch_size > 100_000:
        errors.append(f"--batch_size must be between 1 and 100000, got {options.batch_size}")
    if options.decode_processes < 0 or options.decode_processes > 256:
        errors.append(f"--decode_processes must be between 0 (one per core) and 256, got {options.decode_processes}")
    if options.max_dead_letter_payload_bytes < 1024:
        errors.append("--max_dead_letter_payload_bytes must be at least 1024")
    if options.progress_interval < 0:
        errors.append("--progress_interval must be 0 (off) or a number of seconds")
    if options.okta_org is not None:
        if options.source == "okta":
            errors.append("--okta_org is for --source=file or pubsub; the API sources take the org from its URL")
        elif not _ORG_HOST.fullmatch(options.okta_org):
            errors.append(f"--okta_org must be the org's host name, e.g. acme.okta.com, not {options.okta_org!r}")
    if options.run_id is not None and not _safe_name(options.run_id):
        errors.append("--run_id may only use letters, digits, '-', '_' and '.'")
    return errors


def _local_location_problems(options: LakeOptions) -> list[str]:
    """Local output folders and state files that cannot be created (cloud URIs are checked when written)."""
    import os

    problems = []

    def blocked(path: str) -> str | None:
        """The first existing ancestor that is not a folder, if any."""
        current = os.path.abspath(path)
        while True:
            parent = os.path.dirname(current)
            if os.path.exists(current):
                return None if os.path.isdir(current) else current
            if parent == current:
                return None
            current = parent

    for name, value in (("--output", options.output), ("--dead_letter", options.dead_letter)):
        if value and "://" not in value:
            if os.path.exists(value) and not os.path.isdir(value):
                problems.append(f"{name} {value} is a file, not a folder")
            elif (where := blocked(value)) is not None:
                problems.append(f"{name} {value} cannot be created: {where} is a file")
    if options.state and "://" not in options.state and not options.orgs:
        if os.path.isdir(options.state):
            problems.append(f"--state {options.state} is a folder; give the path of a cursor file in it")
        elif (where := blocked(os.path.dirname(os.path.abspath(options.state)))) is not None:
            problems.append(f"--state {options.state} cannot be written: {where} is a file")
    return problems


MAX_SINCE_DAYS = 180  # Okta answers 400 E0000053 beyond this


def validate_streaming(options: LakeOptions) -> list[str]:
    from sources.pubsub.messages import SUBSCRIPTION_FORMAT, parse_subscription

    errors: list[str] = []
    if options.source == "file":
        errors.append("--streaming needs --source=okta (tail the System Log) or --source=pubsub")
    if options.source == "pubsub" and not parse_subscription(options.subscription or ""):
        errors.append(f"--subscription is required with --source=pubsub, as {SUBSCRIPTION_FORMAT}"
                      + (f", not {options.subscription!r}" if options.subscription else ""))
    if options.source == "okta":
        if options.since or options.until:
            errors.append("--since/--until are for backfills; a --streaming tail starts from --state "
                          "(or --lookback back on its first run)")
        if not options.state and not (options.iceberg_table and not options.orgs):
            errors.append("--streaming with --source=okta needs --state (or --iceberg_table, whose snapshots record "
                          "the cursor): the cursor is stored there after each committed window, so a restart "
                          "resumes without loss")
    durations = {}
    for name, value in (("--window", options.window), ("--poll_interval", options.poll_interval),
                        ("--dedupe_horizon", options.dedupe_horizon), ("--stop_after", options.stop_after)):
        least = 1
        if value is None:
            continue
        try:
            durations[name] = parse_duration(value, name).total_seconds()
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if durations[name] < least:
            errors.append(f"{name} must be at least {least} s")
    if durations.get("--dedupe_horizon", 1e9) < durations.get("--window", 0):
        errors.append("--dedupe_horizon must be at least one --window")
    return errors


def validate_okta(options: LakeOptions, now: _dt.datetime | None = None, streaming: bool = False) -> list[str]:
    from okta_client.errors import UnsafeUrl
    from okta_client.urls import normalise_org_url

    errors: list[str] = []
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if options.orgs:
        errors += _orgs_problems(options, streaming)
    elif not options.okta_org_url:
        errors.append("--okta_org_url (one org) or --orgs=FILE (many) is required with --source=okta, "
                      "e.g. --okta_org_url=https://acme.okta.com")
    else:
        try:
            normalise_org_url(options.okta_org_url)
        except UnsafeUrl as exc:
            errors.append(f"--okta_org_url: {exc}")
    for name, value in (("--slice", options.slice), ("--lookback", options.lookback)):
        try:
            parse_duration(value, name)
        except ValueError as exc:
            errors.append(str(exc))
    since = until = None
    for name, value in (("--since", options.since), ("--until", options.until)):
        if value:
            try:
                parsed = parse_time(value, name)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if name == "--since":
                since = parsed
            else:
                until = parsed
    if since and now - since > _dt.timedelta(days=MAX_SINCE_DAYS):
        errors.append(f"--since {options.since} is more than {MAX_SINCE_DAYS} days back: Okta refuses it "
                      "(E0000053), and keeps only 90 days of events")
    if since and until and until <= since:
        errors.append(f"--until {options.until} must be after --since {options.since}")
    if options.until and not options.since:
        errors.append("--until needs --since (a backfill reads [since, until))")
    if not options.since and not options.state and not streaming and not options.orgs and not options.iceberg_table:
        errors.append("--source=okta needs either --since/--until (a backfill) or --state or --iceberg_table "
                      "(an incremental run, resuming from the cursor either records)")
    if options.since and not options.until and not errors and not streaming:
        errors.append("--since needs --until for a backfill; for an open-ended tail use --state")
    if not options.since:
        try:
            if parse_duration(options.lookback, "--lookback") > _dt.timedelta(days=MAX_SINCE_DAYS):
                errors.append(f"--lookback may be at most {MAX_SINCE_DAYS} days (Okta's limit for since)")
        except ValueError:
            pass
    if not 0 < options.okta_rate_share <= 1:
        errors.append(f"--okta_rate_share must be more than 0 and at most 1, got {options.okta_rate_share}")
    if not 1 <= options.okta_page_limit <= 1000:
        errors.append(f"--okta_page_limit must be between 1 and 1000, got {options.okta_page_limit}")
    if options.orgs:
        return errors
    if options.okta_private_key_file and not options.okta_client_id:
        errors.append("--okta_private_key_file needs --okta_client_id (OAuth)")
    if options.okta_client_id and options.okta_token_file:
        errors.append("give either --okta_client_id (OAuth) or --okta_token_file (API token), not both")
    errors += _credential_problems(options)
    return errors


def _orgs_problems(options: LakeOptions, streaming: bool) -> list[str]:
    """--orgs: the file, then every org in it (one line per problem, naming the org)."""
    from sources.okta.orgs import OrgsFileError, load_document, parse_orgs

    errors = []
    for flag in ("okta_org_url", "okta_token_file", "okta_client_id", "okta_private_key_file", "okta_key_id"):
        if getattr(options, flag):
            errors.append(f"--{flag} is per org with --orgs: give it in the orgs file instead")
    if options.state and "://" not in options.state and os.path.isfile(options.state):
        errors.append(f"--state {options.state} is a file; with --orgs it is the folder of the orgs' cursors "
                      "(<host>.json each)")
    try:
        document = load_document(options.orgs)
    except OrgsFileError as exc:
        return errors + [f"--orgs {options.orgs} {exc}"]
    orgs, problems = parse_orgs(document, default_event_types=options.event_types,
                                default_rate_share=options.okta_rate_share, state_dir=options.state,
                                page_limit=options.okta_page_limit, filter_pushdown=options.okta_filter_pushdown)
    errors += [f"--orgs {options.orgs}: {p}" for p in problems]
    if (not options.since or streaming) and any(org.state is None for org in orgs):
        missing = ", ".join(org.host for org in orgs if org.state is None)
        errors.append(f"--orgs: incremental and streaming runs need a cursor per org: give --state=FOLDER "
                      f"(or state: per org) for {missing}"
                      + (" (--iceberg_table alone is not enough with --orgs: a many-org run resumes from the "
                         "orgs' state files)" if options.iceberg_table else ""))
    return errors


def _credential_problems(options: LakeOptions) -> list[str]:
    """Are the credentials where the options say? (Checked here; read again by each worker.)"""
    import os

    from sources.okta.connect import PRIVATE_KEY_ENV, TOKEN_ENV

    if options.okta_client_id:
        if options.okta_private_key_file:
            return _readable(options.okta_private_key_file, "--okta_private_key_file")
        if not os.environ.get(PRIVATE_KEY_ENV, "").strip():
            return [f"OAuth needs the private key: --okta_private_key_file or the {PRIVATE_KEY_ENV} variable"]
        return []
    if options.okta_token_file:
        return _readable(options.okta_token_file, "--okta_token_file")
    if not os.environ.get(TOKEN_ENV, "").strip():
        return [f"no Okta credentials: set {TOKEN_ENV}, or give --okta_token_file, or "
                "--okta_client_id with a private key"]
    return []


def _readable(path: str, name: str) -> list[str]:
    from okta_client.errors import ConfigurationError
    from sources.okta.connect import read_secret_file

    try:
        if not read_secret_file(path):
            return [f"{name} {path} is empty"]
    except ConfigurationError as exc:
        return [f"{name}: {exc}"]
    return []


_ORG_HOST = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?")


def _safe_name(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", value))
