"""The first group of the pipeline's options (what to read, where to write, how to decode), Beam-free.

:class:`pipeline.options.LakeOptions` declares them with :func:`add_lake_group`;
:mod:`pipeline.prestart` parses the same declarations before Beam is imported.
"""

from __future__ import annotations

import argparse

from transforms.selection import DEFAULT_EVENT_TYPES

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
