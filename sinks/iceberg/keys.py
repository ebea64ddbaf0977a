"""Which data files of a snapshot can hold a commit's keys, planned without re-reading every manifest (no Beam).

The insert-if-absent check (:func:`sinks.iceberg.commit.absent_rows`) needs the files of the
touched partitions whose ``published`` range overlaps the new rows'. pyiceberg's scan planning
finds them by decoding every entry of every manifest and evaluating the filter on each, in
Python, at each commit: a streaming window's check then costs time in proportion to the files
of the day (bench/RESULTS.md: 0.13 s of a 0.22 s commit at window 1,000). Manifests are
immutable files, so this module keeps each manifest's entries, reduced to what the check
needs (event type, ``published`` bounds as integers), in a per-process cache keyed by the
manifest's path: a commit decodes only the manifests written since the last one (its own, and
a merge's; new tables keep merged manifests small, see ``commit.manifest.target-size-bytes``
in :data:`sinks.iceberg.table.TABLE_PROPERTIES`), then compares a few integers per file.
Manifests whose partition summary excludes the rows' days are skipped unread, as pyiceberg's
planning does, so a large table's other days are neither decoded nor cached.

:func:`candidate_files` returns None when it cannot plan safely (a snapshot with delete
files): the caller then scans as before.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

CACHE_ENTRIES = 100_000  # manifest entries kept, least recently used dropped (a day of one-minute windows: 1,440)
_DAY_US = 86_400_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class _Entry:
    data_file: object
    event_type: str | None  # None: the file's spec does not partition by event_type
    low: int | None  # published lower bound, microseconds (None: no statistics)
    high: int | None


class _Cache:
    """Manifest path -> its entries, bounded by the number of entries held."""

    def __init__(self, size: int):
        self._size, self._items, self._lock = size, {}, threading.Lock()
        self._held = 0
        self.reads = 0  # manifests decoded (for tests and the bench)

    def get(self, key):
        with self._lock:
            value = self._items.pop(key, None)
            if value is not None:
                self._items[key] = value  # most recently used last
            return value

    def put(self, key, value) -> None:
        with self._lock:
            if key in self._items:
                self._held -= len(self._items.pop(key))
            self._items[key] = value
            self._held += len(value)
            while self._held > self._size and len(self._items) > 1:
                self._held -= len(self._items.pop(next(iter(self._items))))


_CACHE = _Cache(CACHE_ENTRIES)


def manifests_decoded() -> int:
    """How many manifests this process decoded for key checks (the rest came from the cache)."""
    return _CACHE.reads


def _micros(moment: _dt.datetime) -> int:
    return (moment - _EPOCH) // _dt.timedelta(microseconds=1)


def key_ranges(rows: pa.Table) -> dict[str, tuple[int, int]]:
    """Per event type of ``rows``, its ``published`` range in microseconds."""
    out = {}
    for event_type in set(rows.column("event_type").to_pylist()):
        published = rows.column("published").filter(pc.equal(rows.column("event_type"), event_type))
        out[event_type] = (_micros(pc.min(published).as_py()), _micros(pc.max(published).as_py()))
    return out


def _entries(table, manifest, published_id: int) -> tuple[_Entry, ...]:
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import TimestamptzType

    key = (manifest.manifest_path, published_id)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    specs = table.specs()
    positions: dict[int, int | None] = {}
    out = []
    for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
        data_file = entry.data_file
        spec_id = getattr(data_file, "_spec_id", None)
        spec_id = manifest.partition_spec_id if spec_id is None else spec_id
        if spec_id not in positions:
            spec = specs.get(spec_id)
            fields = [f.name for f in spec.fields] if spec is not None else []
            positions[spec_id] = fields.index("event_type") if "event_type" in fields else None
        position = positions[spec_id]
        event_type = data_file.partition[position] if position is not None else None
        lower = (data_file.lower_bounds or {}).get(published_id)
        upper = (data_file.upper_bounds or {}).get(published_id)
        out.append(_Entry(data_file, event_type,
                          from_bytes(TimestamptzType(), lower) if lower is not None else None,
                          from_bytes(TimestamptzType(), upper) if upper is not None else None))
    _CACHE.reads += 1
    result = tuple(out)
    _CACHE.put(key, result)
    return result


def candidate_files(table, snapshot, ranges: dict[str, tuple[int, int]]) -> list | None:
    """The live data files of ``snapshot`` that can hold rows of these event types in these ``published`` ranges.

    None when the snapshot has delete files (then only a full scan plan is right).
    """
    from pyiceberg.manifest import ManifestContent

    manifests = snapshot.manifests(table.io)
    if any(m.content != ManifestContent.DATA for m in manifests):
        return None
    published_id = table.schema().find_field("published").field_id
    everything = list(ranges.values())
    days = (min(low for low, _ in everything) // _DAY_US, max(high for _, high in everything) // _DAY_US)
    out = []
    for manifest in manifests:
        if not _may_hold_days(table, manifest, published_id, days):
            continue  # as pyiceberg's planning does: the manifest's partition summary excludes these days
        for entry in _entries(table, manifest, published_id):
            if entry.event_type is not None:
                span = ranges.get(entry.event_type)
                if span is None:
                    continue
                spans = [span]
            else:
                spans = everything
            if any((entry.low is None or entry.low <= high) and (entry.high is None or entry.high >= low)
                   for low, high in spans):
                out.append(entry.data_file)
    return out


def _may_hold_days(table, manifest, published_id: int, days: tuple[int, int]) -> bool:
    """False when the manifest's summary of the ``day(published)`` partition field lies outside ``days``."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import DateType

    spec = table.specs().get(manifest.partition_spec_id)
    if spec is None or not manifest.partitions:
        return True
    for position, field in enumerate(spec.fields):
        if field.source_id == published_id and isinstance(field.transform, DayTransform):
            if position >= len(manifest.partitions):
                return True
            summary = manifest.partitions[position]
            if summary.lower_bound is None or summary.upper_bound is None:
                return True
            low, high = from_bytes(DateType(), summary.lower_bound), from_bytes(DateType(), summary.upper_bound)
            return not (high < days[0] or low > days[1])
    return True


def read_keys(table, files: list, row_filter, fields: tuple[str, ...]) -> pa.Table:
    """``fields`` of the rows of ``files`` that match ``row_filter`` (pyiceberg's reader: field ids, evolution)."""
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.table import FileScanTask

    schema = table.schema().select(*fields)
    return ArrowScan(table.metadata, table.io, schema, row_filter).to_table([FileScanTask(f) for f in files])
