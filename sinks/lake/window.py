"""Commit one streaming window's rows and dead letters to the lake (no Beam inside).

Both streaming sources end here: the Okta tail when a window of polls is
done, the Pub/Sub path once per window and partition. A window's files are
named after it, ``part-w20261125T233000Z-<job>-<id>.parquet`` and
``DEAD_LETTER/w20261125T233000Z-<job>/...``, and every commit is
insert-if-absent on ``uuid`` against the partition's files under the partition's
commit lease (see :func:`sinks.lake.commit.commit_partition`), so replaying a window after a
restart adds nothing that is already there, and neither does another run committing the partition at once.
"""

from __future__ import annotations

import datetime as _dt
import uuid as _uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from sinks.lake.commit import commit_partition
from sinks.lake.dead_letters import DeadLetterStager, commit_dead_letters
from sinks.lake.stage import PartitionStager
from sinks.lake.staging import leased, remove_stale_now_and_then, staging_dir
from storage import fs
from transforms.records import PartitionKey


def window_id(start_seconds: float) -> str:
    """``w20261125T233000Z`` for a window starting at that UTC second."""
    return "w" + _dt.datetime.fromtimestamp(int(start_seconds), _dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def window_start(now: float, length_seconds: float) -> float:
    return now - (now % length_seconds)


@dataclass
class WindowCommit:
    window: str
    partitions: list = field(default_factory=list)  # partition paths written
    written: list = field(default_factory=list)  # (partition path, file name) of every file committed
    # Partitions already holding some of the window's rows (a replay): the Iceberg commit re-reads them whole.
    replayed: list = field(default_factory=list)
    files: int = 0
    rows: int = 0
    events: int = 0
    duplicates_in_lake: int = 0
    duplicates_in_window: int = 0
    dead_letters: int = 0


def commit_window(lake: str, dead_letter_uri: str, window: str, job: str, schema: pa.Schema,
                  rows: Iterable[tuple[PartitionKey, pa.Table]], dead_letters: Iterable[dict] = (),
                  compression: str = fs.PARQUET_COMPRESSION) -> WindowCommit:
    """Stage and commit rows (any partitions) and dead letters of one window; idempotent per uuid."""
    run_id = f"{window}-{job}"
    # Each call stages into its own folder: several partitions of one window may commit at once.
    staging = staging_dir(lake, f"{run_id}-{_uuid.uuid4().hex[:12]}")
    result = WindowCommit(window)
    with leased(staging):
        stager = PartitionStager(staging, schema, compression=compression)
        for key, table in rows:
            result.duplicates_in_window += stager.add(key, table)
        by_partition: dict[PartitionKey, list] = {}
        for staged in stager.close():
            by_partition.setdefault(staged.partition, []).append(staged)
        for key in sorted(by_partition):
            commit = commit_partition(lake, key, by_partition[key], run_id, compression)
            if commit.files:
                result.partitions.append(commit.partition)
                result.written += [(commit.partition, name) for name in commit.files]
            if commit.duplicates_in_lake:
                result.replayed.append(commit.partition)
            result.files += len(commit.files)
            result.rows += commit.rows
            result.events += commit.events
            result.duplicates_in_lake += commit.duplicates_in_lake
            result.duplicates_in_window += commit.duplicates_in_run
        dead = DeadLetterStager(staging)
        for record in dead_letters:
            dead.add(record)
        for staged in dead.close():
            commit_dead_letters(dead_letter_uri, staged, run_id)
            result.dead_letters += staged.rows
    remove_stale_now_and_then(lake)
    return result
