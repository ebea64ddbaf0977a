"""The lake's settings: where it is (``--output``), where dead letters go, how Parquet is compressed.

:class:`LakeSettings` is what every writer of the lake carries (the batch sink, the streaming
windows, the BigQuery merge and the Iceberg steps read the lake through it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sinks.lake.dead_letters import DEFAULT_DEAD_LETTER_DIR
from sinks.lake.records import RUNS_DIR
from storage import fs

COMPRESSIONS = ("zstd", "snappy")


@dataclass(frozen=True)
class LakeSettings:
    root: str  # the lake URI, without a trailing slash
    dead_letter: str  # where dead-letter records go (default ROOT/_dead_letter)
    compression: str = fs.PARQUET_COMPRESSION

    def manifest(self, run_id: str) -> str:
        """The run manifest of a batch run: ``ROOT/_runs/<run_id>.json``."""
        return fs.join(self.root, RUNS_DIR, f"{run_id}.json")


def add_flags(parser) -> None:
    group = parser.add_argument_group("The lake")
    group.add_argument(
        "--output",
        help="Lake URI (local folder, gs://bucket/path or s3://bucket/path). Rows land in "
             "OUTPUT/event_date=YYYY-MM-DD/event_type=TYPE/*.parquet.")
    group.add_argument(
        "--dead_letter", default=None,
        help="Where dead-letter records go, as JSON Lines under DEAD_LETTER/RUN_ID/ "
             "(default: OUTPUT/_dead_letter).")
    group.add_argument(
        "--compression", choices=COMPRESSIONS, default="zstd",
        help="Parquet compression codec (default zstd).")


def resolve(options, problems: list[str]) -> LakeSettings | None:
    """The run's :class:`LakeSettings`, or None with each problem appended to ``problems``."""
    if not options.output:
        problems.append("--output is required: the lake folder or gs:// / s3:// URI to write to")
        return None
    found = len(problems)
    for name, value in (("--output", options.output), ("--dead_letter", options.dead_letter)):
        if value and "://" not in value:
            if os.path.exists(value) and not os.path.isdir(value):
                problems.append(f"{name} {value} is a file, not a folder")
            elif (where := fs.blocking_file(value)) is not None:
                problems.append(f"{name} {value} cannot be created: {where} is a file")
    if len(problems) > found:
        return None
    root = options.output.rstrip("/")
    dead_letter = (options.dead_letter or fs.join(root, DEFAULT_DEAD_LETTER_DIR)).rstrip("/")
    return LakeSettings(root, dead_letter, options.compression)
