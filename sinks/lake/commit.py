"""Commit a run's staged files into the lake: the second half of the lake's file protocol (no Beam here).

Once every worker is done staging (:mod:`sinks.lake.stage`), each partition is committed by
exactly one worker: it takes the partition's commit lease (:mod:`sinks.lake.locks`), reads the
``uuid`` column of the partition's existing files, then moves each staged file into
``event_date=.../event_type=.../part-<run_id>-<id>.parquet``, rewriting it
without the events whose uuid is already in the lake or in an earlier file
of this commit. A file appears whole or not at all.

So a write is *insert-if-absent on uuid*: re-running the same input, or an
overlapping range, or a run that crashed half-way, never duplicates an
event, and never needs to delete data that is already there; and since the lease lets one commit
at a time read and publish a partition, neither do runs that commit the same partition at once.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from sinks.lake.locks import LeaseTiming, PartitionLease
from sinks.lake.stage import StagedFile
from sinks.lake.staging import STAGED_SUFFIX, file_id
from storage import fs
from transforms.records import PartitionKey


def final_name(run_id: str, staged_path: str, prefix: str = "part") -> str:
    return f"{prefix}-{run_id}-{file_id(staged_path)}.parquet"


def newest_published(directory: str, names: Iterable[str]) -> float | None:
    """The newest ``published`` (epoch seconds) in committed files of one partition, None when empty."""
    newest = None
    for name in names:
        value = pc.max(fs.read_parquet(fs.join(directory, name), columns=["published"]).column("published")).value
        if value is not None:
            seconds = value.timestamp() if hasattr(value, "timestamp") else value / 1e6
            newest = seconds if newest is None else max(newest, seconds)
    return newest


class PartitionCommit(NamedTuple):
    """What committing one partition did."""

    partition: str  # event_date=.../event_type=...
    files: list  # file names written
    rows: int
    events: int
    duplicates_in_run: int  # events already committed by an earlier staged file of this run
    duplicates_in_lake: int  # events whose uuid was already in the lake before this run
    #: The same counts per okta_org (``{org: {"rows", "events", "duplicates_in_run", "duplicates_in_lake",
    #: "withheld"}}``), for the orgs that have one; empty when no row names its org.
    by_org: dict = {}
    withheld: int = 0  # events of ``withheld_orgs`` (orgs whose source failed), left uncommitted


def _tally() -> dict:
    return {"rows": 0, "events": 0, "duplicates_in_run": 0, "duplicates_in_lake": 0, "withheld": 0}


#: The uuids of committed files this process has read, newest last: a committed file is never changed in place
#: (names are unique; a rewrite has a new name), so a stream's next commit of the partition reads only the files
#: added since, not the whole day's. Bounded by MAX_KNOWN_UUIDS (the oldest files are read again when needed).
_known: OrderedDict[str, frozenset] = OrderedDict()
_known_lock = threading.Lock()
_known_size = 0
MAX_KNOWN_UUIDS = 500_000


def _uuid_set(path: str) -> frozenset:
    global _known_size
    with _known_lock:
        if path in _known:
            _known.move_to_end(path)
            return _known[path]
    try:
        uuids = frozenset(fs.read_parquet(path, columns=["uuid"]).column("uuid").to_pylist())
    except Exception as exc:  # a foreign or corrupt file in our partition
        raise OSError(
            f"cannot read the uuid column of {path} ({exc.__class__.__name__}: {exc}); "
            "every .parquet file in a lake partition must be one this pipeline wrote"
        ) from None
    with _known_lock:
        if path not in _known:
            _known[path] = uuids
            _known_size += len(uuids)
        while _known_size > MAX_KNOWN_UUIDS and len(_known) > 1:
            _known_size -= len(_known.popitem(last=False)[1])
    return uuids


def commit_partition(
    lake: str,
    key: PartitionKey,
    staged: Iterable[StagedFile],
    run_id: str,
    compression: str = fs.PARQUET_COMPRESSION,
    withheld_orgs: frozenset = frozenset(),
    lease: LeaseTiming | None = None,
) -> PartitionCommit:
    """Move a partition's staged files into the lake, skipping uuids already there.

    Safe to run again after a crash or a retried bundle: a staged file that is
    already committed (its final file exists, the staged one is gone) is
    counted as committed, not written twice.

    Rows whose ``okta_org`` is in ``withheld_orgs`` (many-org runs: the orgs whose source failed)
    are never committed: they are counted as ``withheld`` and left out of the file. Filtering here,
    rather than staging each org apart, costs nothing when every org is healthy (the commit reads the
    ``uuid`` and ``okta_org`` columns anyway) and keeps one file per partition and stager, not one per
    org. A staged file that held withheld rows stays in the staging folder (removed with it at the
    end of the run, or as a dead run's), so a retried commit counts them again the same way; a
    staged file is only ever published by its own run's commit, so a failed org's rows never reach
    the lake later either, whatever crashes.

    The whole commit holds the partition's lease (``lease``: its timing, the module's by default):
    another run's commit of the partition waits until it is done, then finds its events.
    """
    with PartitionLease(lake, key.path(), run_id, lease) as owned:
        return _commit_owned(lake, key, staged, run_id, compression, withheld_orgs, owned)


def _commit_owned(lake: str, key: PartitionKey, staged: Iterable[StagedFile], run_id: str, compression: str,
                  withheld_orgs: frozenset, lease: PartitionLease) -> PartitionCommit:
    directory = fs.join(lake, key.path())
    staged = sorted(staged, key=lambda s: s.path)
    ours = {final_name(run_id, s.path): s for s in staged}
    in_lake: set[str] = set()
    for path in fs.list_files(fs.join(directory, "*.parquet")):
        if os.path.basename(path) not in ours:
            in_lake |= _uuid_set(path)
    in_run: set[str] = set()
    files, rows, events, dup_run, dup_lake, withheld = [], 0, 0, 0, 0, 0
    by_org: dict = {}

    def count(orgs, uuids, what: str, row_counts: dict | None = None) -> None:
        if isinstance(orgs, str):  # the whole file is one org's (the usual case): no per-uuid work
            tally = by_org.setdefault(orgs, _tally())
            tally[what] += len(uuids)
            return
        for uuid in uuids:
            org = orgs.get(uuid)
            if org is not None:
                tally = by_org.setdefault(org, _tally())
                tally[what] += 1
                if row_counts is not None:
                    tally["rows"] += row_counts[uuid]

    for item in staged:
        name = final_name(run_id, item.path)
        final = fs.join(directory, name)
        table = _keys(item.path)  # None: committed by an earlier attempt (or lost)
        if table is None:
            table = _keys(final)
            if table is None:
                raise OSError(f"staged file {item.path} is missing and was never committed")
            uuids = set(table.column("uuid").to_pylist())
            in_run |= uuids
            files.append(name)
            rows += table.num_rows
            events += len(uuids)
            orgs, row_counts = _orgs_of(table)
            count(orgs, uuids, "events", row_counts)
            _add_rows(by_org, orgs, table.num_rows)
            continue
        uuids = set(table.column("uuid").to_pylist())
        orgs, row_counts = _orgs_of(table)
        held = _withheld(orgs, uuids, withheld_orgs)
        if held:
            withheld += len(held)
            count(orgs, held, "withheld")
            uuids -= held
            if isinstance(orgs, str):
                orgs, row_counts = {}, {}  # nothing of this one-org file is committed
        lake_dups = uuids & in_lake
        run_dups = (uuids - in_lake) & in_run
        dup_lake += len(lake_dups)
        dup_run += len(run_dups)
        count(orgs, lake_dups, "duplicates_in_lake")
        count(orgs, run_dups, "duplicates_in_run")
        fresh = uuids - lake_dups - run_dups
        # A staged file that is not published whole stays in staging (removed with the folder), so a
        # retried commit judges it again the same way: deleting it here would make a retry count a
        # rewritten file's duplicates as nothing, or find an all-duplicates file "missing".
        if not fresh:
            continue
        if lake_dups or run_dups or held:
            full = fs.read_parquet(item.path)
            keep = full.filter(pc.is_in(full.column("uuid"), pa.array(list(fresh), pa.string())))
            # Written beside the staged file first, so the publish after the lease check is one rename.
            kept = fs.join(item.path.rsplit("/", 1)[0], f"{file_id(item.path)}-kept.parquet{STAGED_SUFFIX}")
            fs.write_parquet(kept, keep, compression)
            lease.check()
            fs.rename(kept, final)
            rows += keep.num_rows
            _add_rows(by_org, orgs, keep.num_rows)
        else:
            lease.check()
            fs.rename(item.path, final)
            rows += table.num_rows
            _add_rows(by_org, orgs, table.num_rows)
        in_run |= fresh
        events += len(fresh)
        count(orgs, fresh, "events", row_counts)
        files.append(name)
    return PartitionCommit(key.path(), files, rows, events, dup_run, dup_lake, by_org, withheld)


def _withheld(orgs, uuids: set, withheld_orgs: frozenset) -> set:
    """The uuids of a staged file that belong to a withheld org (``orgs`` as :func:`_orgs_of` gives)."""
    if not withheld_orgs or not orgs:
        return set()
    if isinstance(orgs, str):
        return set(uuids) if orgs in withheld_orgs else set()
    return {uuid for uuid in uuids if orgs.get(uuid) in withheld_orgs}


def _keys(path: str) -> pa.Table | None:
    """uuid (and okta_org, when the file has it) of a staged or committed file; None when it does not exist."""
    found = fs.parquet_file(path)
    if found is None:
        return None
    return found.read(columns=[name for name in ("uuid", "okta_org") if name in found.schema_arrow.names])


def _orgs_of(table: pa.Table) -> tuple:
    """``({uuid: org}, {uuid: rows})`` of a file's keys, or ``(org, None)`` when one org wrote it all;
    ``({}, {})`` when no row names its org."""
    if "okta_org" not in table.column_names or table.column("okta_org").null_count == table.num_rows:
        return {}, {}
    column = table.column("okta_org")
    if column.null_count == 0:
        distinct = pc.unique(column)
        if len(distinct) == 1:
            return distinct[0].as_py(), None
    orgs, row_counts = {}, {}
    for uuid, org in zip(table.column("uuid").to_pylist(), table.column("okta_org").to_pylist()):
        orgs[uuid] = org
        row_counts[uuid] = row_counts.get(uuid, 0) + 1
    return orgs, row_counts


def _add_rows(by_org: dict, orgs, rows: int) -> None:
    """Rows committed from a one-org file (a mixed file counts its rows per uuid instead)."""
    if isinstance(orgs, str) and rows:
        by_org.setdefault(orgs, _tally())["rows"] += rows
