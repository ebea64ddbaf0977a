"""What the lake, the Iceberg table and the dead letters hold for the audited hours (read, never changed).

- The lake: the committed files of the audited days (``event_date=D/event_type=T/*.parquet``, partitions of
  selected types only), their ``uuid``, ``target_index``, ``published`` and ``okta_org`` columns. A row
  belongs to the hour of its ``published`` and to the org its ``okta_org`` names (None: a row written
  without an org, by a file replay or before the column existed).
- The Iceberg table (``--iceberg_table``): the same columns, one scan over the audited range.
- The dead letters (``--dead_letter``, default ``LAKE/_dead_letter``): an event Okta holds that the lake
  does not may have been refused by the pipeline, with its reason; it is accounted for, not missing.
  They are read only when something is missing, and only their ``uuid``, ``okta_org``, ``stage`` and
  ``error``.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field

from common.errors import LakeError
from storage import fs
from tools.audit.hours import floor_hour

LAKE_COLUMNS = ("uuid", "target_index", "published", "okta_org")


@dataclass
class Held:
    """What a store holds: (org or None, hour, event type) -> its uuids; and rows held more than once."""

    uuids: dict[tuple, set[str]] = field(default_factory=dict)
    doubled: Counter = field(default_factory=Counter)  # (org, hour, event type) -> extra copies of a row
    files: int = 0  # files (lake) or scans (Iceberg) read

    def add(self, event_type: str, columns: dict[str, list], hours: set[_dt.datetime], seen: set) -> None:
        """Count rows of one event type in ``hours``; ``seen``: the (uuid, target_index) pairs of the partition so
        far (a row held twice, in one file or two, is counted in ``doubled``)."""
        orgs = columns.get("okta_org") or [None] * len(columns["uuid"])
        for uuid, index, published, org in zip(columns["uuid"], columns["target_index"], columns["published"],
                                               orgs):
            if published is None or uuid is None:
                continue
            hour = floor_hour(published if published.tzinfo else published.replace(tzinfo=_dt.timezone.utc))
            if hour not in hours:
                continue
            key = (org, hour, event_type)
            self.uuids.setdefault(key, set()).add(uuid)
            if (uuid, index) in seen:
                self.doubled[key] += 1
            seen.add((uuid, index))

    def merge(self, other: Held) -> None:
        """Add what ``other`` holds (another partition's rows)."""
        for key, uuids in other.uuids.items():
            self.uuids.setdefault(key, set()).update(uuids)
        self.doubled.update(other.doubled)
        self.files += other.files

    def of(self, org: str | None, hour: _dt.datetime) -> dict[str, str]:
        """uuid -> event type of the rows of ``org`` (None: rows without an org) in ``hour``."""
        found = {}
        for (held_org, held_hour, event_type), uuids in self.uuids.items():
            if held_org == org and held_hour == hour:
                found.update(dict.fromkeys(uuids, event_type))
        return found

    def doubled_rows(self, org: str | None, hour: _dt.datetime) -> int:
        return sum(n for (held_org, held_hour, _), n in self.doubled.items() if held_org == org and held_hour == hour)


#: Reads of one partition before the audit gives up on it: a file that vanished between the listing and its
#: read was compacted meanwhile (its rows are in a file published before it went), so the partition is listed
#: and read again.
PARTITION_READS = 5


class LakeChanging(LakeError):
    """A partition's files kept changing while the audit read it (a stream compacting it): audit again."""

    retryable = True


def read_lake(lake: str, hours: set[_dt.datetime], selected) -> Held:
    """The lake's rows in ``hours``, of the event types ``selected(event_type)`` keeps.

    Each partition is read from one listing; when a listed file is gone before it is read (a stream's
    compaction replaced it: docs/lake.md), the partition is listed and read again from scratch, so rows are
    neither missed nor counted twice."""
    held = Held()
    for day in sorted({hour.date() for hour in hours}):
        partitions: dict[str, list[str]] = {}
        for path in fs.list_files(fs.join(lake, f"event_date={day.isoformat()}", "event_type=*", "*.parquet")):
            partitions.setdefault(path.rsplit("/", 1)[0], []).append(path)
        for folder, paths in sorted(partitions.items()):
            event_type = folder.rsplit("event_type=", 1)[1]
            if not selected(event_type):
                continue
            for _ in range(PARTITION_READS):
                found = _read_partition(paths, event_type, hours)
                if found is not None:
                    held.merge(found)
                    break
                paths = fs.list_files(fs.join(folder, "*.parquet"))
            else:
                raise LakeChanging(f"the files of {folder} changed under {PARTITION_READS} reads in a row")
    return held


def _read_partition(paths: list[str], event_type: str, hours: set) -> Held | None:
    """One partition's rows in ``hours`` from ``paths``; None when one of them is gone."""
    held, seen = Held(), set()
    for path in paths:
        parquet = fs.parquet_file(path)
        if parquet is None:  # removed since it was listed: compacted into a file published before
            return None
        names = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[c for c in LAKE_COLUMNS if c in names])
        columns = {name: table.column(name).to_pylist() for name in table.column_names}
        columns.setdefault("target_index", [None] * table.num_rows)
        held.add(event_type, columns, hours, seen)
        held.files += 1
    return held


def read_iceberg(target, hours: set[_dt.datetime], selected) -> Held:
    """The Iceberg table's rows in ``hours`` of the selected types (one scan from the first hour to the last)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from sinks.iceberg.table import connect
    from tools.audit.hours import HOUR

    held = Held()
    if not hours:
        return held
    table = connect(target).load_table(target.table)
    names = {f.name for f in table.schema().fields}
    row_filter = And(GreaterThanOrEqual("published", min(hours).isoformat()),
                     LessThan("published", (max(hours) + HOUR).isoformat()))
    fields = tuple(c for c in LAKE_COLUMNS + ("event_type",) if c in names)
    rows = table.scan(row_filter=row_filter, selected_fields=fields).to_arrow()
    held.files = 1
    columns = {name: rows.column(name).to_pylist() for name in rows.column_names}
    columns.setdefault("target_index", [None] * rows.num_rows)
    by_type: dict[str, list[int]] = {}
    for number, event_type in enumerate(columns.pop("event_type")):
        if selected(event_type):
            by_type.setdefault(event_type, []).append(number)
    for event_type, numbers in by_type.items():
        held.add(event_type, {name: [values[i] for i in numbers] for name, values in columns.items()}, hours, set())
    return held


def read_dead_letters(dead_letter: str, uuids: set[str]) -> dict[str, dict]:
    """uuid -> ``{"okta_org", "stage", "error", "run_id"}`` of the dead letters among ``uuids`` (the newest wins)."""
    from transforms import jsonio

    found: dict[str, dict] = {}
    if not uuids:
        return found
    for path in sorted(fs.list_files(fs.join(dead_letter, "*", "*.jsonl"))):
        try:
            lines = fs.read_bytes(path).splitlines()
        except Exception:  # noqa: BLE001 - a file removed meanwhile: its records cannot account for anything
            continue
        run_id = path.rsplit("/", 2)[-2]
        for line in lines:
            if not line.strip():
                continue
            try:
                record = jsonio.loads(line)
            except Exception:  # noqa: BLE001 - not ours to judge; it accounts for nothing
                continue
            if isinstance(record, dict) and record.get("uuid") in uuids:
                found[record["uuid"]] = {"okta_org": record.get("okta_org"), "stage": record.get("stage"),
                                         "error": str(record.get("error", ""))[:200], "run_id": run_id}
    return found
