"""The file source's settings: which exported files to replay (``--input``) and in how many processes."""

from __future__ import annotations

from dataclasses import dataclass

from common.flags import comma_list


@dataclass(frozen=True)
class FileSourceSettings:
    patterns: tuple[str, ...]  # globs (local, gs://, s3://)
    decode_processes: int = 0  # local runs: 0 = one per usable core, 1 = in the pipeline's own process


def add_flags(parser) -> None:
    group = parser.add_argument_group("Exported files (--source=file)")
    group.add_argument(
        "--input", action="append", default=None,
        help="Glob of exported files to replay (local, gs://, s3://); JSON Lines (.gz too), "
             "JSON arrays (saved /api/v1/logs pages) and Event Hook envelopes, mixed freely. "
             "Repeat the flag or separate globs with commas for several.")
    group.add_argument(
        "--decode_processes", type=int, default=0,
        help="A local run of --source=file decodes and flattens uncompressed local JSON Lines in this "
             "many processes (default 0: one per usable core; 1: in the pipeline's own process). "
             "Ignored on Dataflow, where the file ranges spread over the workers.")


def resolve(options, problems: list[str], *, source: str) -> FileSourceSettings | None:
    """The file source's settings for ``--source=file`` (None otherwise, or with problems appended)."""
    patterns = tuple(comma_list(options.input))
    found = len(problems)
    if not 0 <= options.decode_processes <= 256:
        problems.append(f"--decode_processes must be between 0 (one per core) and 256, got {options.decode_processes}")
    if source != "file":
        return None
    if not patterns:
        problems.append("--input is required with --source=file: a glob of exported System Log files")
    return None if len(problems) > found else FileSourceSettings(patterns, options.decode_processes)
