"""Every option of the pipeline, once, with its help text, and their validation.

The README's option table, and later the Flex Template's ``metadata.json``,
are generated from / checked against :class:`LakeOptions`. Options that take
a yes/no accept ``--flag``, ``--flag=true`` and ``--flag=false`` (Flex
Templates pass every parameter as ``--name=value``).
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.selection import DEFAULT_EVENT_TYPES, EventTypeSelection

SOURCES = ("file",)


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _bool_flag(parser, name: str, default: bool, help: str) -> None:
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)


class LakeOptions(PipelineOptions):
    """Options of the Okta Personal lake pipeline (Beam's own options also apply)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("Okta Personal lake")
        group.add_argument(
            "--source", choices=SOURCES, default="file",
            help="Where events come from: file (replay exported System Log files).")
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
        _bool_flag(group, "--raw_event", True,
                   "Store each event's original JSON in the raw_event column (default true).")
        group.add_argument(
            "--compression", choices=("zstd", "snappy"), default="zstd",
            help="Parquet compression codec (default zstd).")
        group.add_argument(
            "--batch_size", type=int, default=1000,
            help="Events per pipeline element (default 1000, an Okta page).")
        group.add_argument(
            "--max_dead_letter_payload_bytes", type=int, default=16 * 1024 * 1024,
            help="Cut dead-letter payloads longer than this many bytes (flagged in the record; "
                 "default 16 MiB).")
        group.add_argument(
            "--run_id", default=None,
            help="Name of this run in file names, the dead-letter folder and OUTPUT/_runs/ "
                 "(default: UTC start time plus a random suffix).")
        group.add_argument(
            "--progress_interval", type=float, default=10.0,
            help="Seconds between progress lines on stderr in local runs (0 turns them off).")
        _bool_flag(group, "--quiet", False, "No progress lines; only errors and the summary.")


def input_patterns(options: LakeOptions) -> list[str]:
    patterns: list[str] = []
    for value in options.input or []:
        patterns += [p.strip() for p in value.split(",") if p.strip()]
    return patterns


def validate(options: LakeOptions) -> list[str]:
    """Every configuration problem, one clear line each (empty when all is well)."""
    errors: list[str] = []
    if not options.output:
        errors.append("--output is required: the lake folder or gs:// / s3:// URI to write to")
    if options.source == "file" and not input_patterns(options):
        errors.append("--input is required with --source=file: a glob of exported System Log files")
    try:
        EventTypeSelection.parse(options.event_types)
    except ValueError as exc:
        errors.append(str(exc))
    if options.batch_size < 1 or options.batch_size > 100_000:
        errors.append(f"--batch_size must be between 1 and 100000, got {options.batch_size}")
    if options.max_dead_letter_payload_bytes < 1024:
        errors.append("--max_dead_letter_payload_bytes must be at least 1024")
    if options.progress_interval < 0:
        errors.append("--progress_interval must be 0 (off) or a number of seconds")
    if options.run_id is not None and not _safe_name(options.run_id):
        errors.append("--run_id may only use letters, digits, '-', '_' and '.'")
    return errors


def _safe_name(value: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", value))
