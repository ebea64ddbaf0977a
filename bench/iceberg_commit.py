"""Commit cost per streaming window as one day's partition grows: the Iceberg table against the Hive lake.

``python -m bench.iceberg_commit [--windows 1440] [--events 100] [--path streaming]``: commits
WINDOWS windows of EVENTS events (two rows each, one event type, window w published in minute w
of one day) one after the other, each as one Iceberg snapshot (insert-if-absent,
:func:`sinks.iceberg.commit.commit_rows`), and prints the commit time at windows 1, 100, 300 and
1,440 (median of the 5 commits ending there, and the slowest of the 20 ending there).
``--path streaming`` commits through what the streaming job uses,
:class:`sinks.iceberg.windows.WindowCommitter` (table kept open between windows, snapshots
beyond the newest ``--keep_snapshots`` expired every ``--expire_every`` windows, the expiry
counted in the window's time); ``--path rows`` (the default) is a fresh load per commit. Each
commit's CPU time (``time.process_time``, all threads) is printed too: on a shared machine it
moves far less with the load than the wall time.
For the Hive lake it builds the partition with k window files directly and times one
:func:`sinks.lake.commit.commit_partition` of the next window (which reads every uuid of the
partition). Then it compacts the Iceberg partition and prints file counts and the time of a
query over the day's partition before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
import uuid as uuidlib

import pyarrow as pa

from bench.machine import describe
from schemas.arrow import file_schema

EVENT_TYPE = "personal.user.app_migration.export"
DAY = dt.datetime(2026, 11, 5, tzinfo=dt.timezone.utc)


def window_rows(window: int, events: int, with_type: bool) -> pa.Table:
    names = [f.name for f in file_schema()]
    data = {name: [] for name in names}
    for i in range(events):
        uid = str(uuidlib.UUID(int=window * 1_000_000 + i + 1))
        published = DAY + dt.timedelta(minutes=window, seconds=i * 60 / events)
        for target in (0, 1):
            row = {"uuid": uid, "published": published, "target_index": target, "actor_id": f"a{i}",
                   "target_id": f"t{i}-{target}", "severity": "INFO", "raw_event": '{"uuid": "' + uid + '"}'}
            for name in names:
                data[name].append(row.get(name))
    table = pa.table(data, schema=file_schema())
    if with_type:
        table = table.append_column("event_type", pa.array([EVENT_TYPE] * table.num_rows))
    return table


def at_points(times: list[float], points: list[int]) -> dict[int, float]:
    return {p: statistics.median(times[max(0, p - 5):p]) for p in points if p <= len(times)}


def worst_at_points(times: list[float], points: list[int]) -> dict[int, float]:
    return {p: max(times[max(0, p - 20):p]) for p in points if p <= len(times)}


def iceberg(windows: int, events: int, root: str, points: list[int], keep: int = 0, path: str = "rows",
            expire_every: int = 10, properties: dict | None = None, compaction: bool = True) -> dict:
    import duckdb

    from sinks.iceberg.catalog import load_catalog
    from sinks.iceberg.commit import commit_rows
    from sinks.iceberg.maintenance import compact, expire_snapshots, file_count
    from sinks.iceberg.settings import IcebergTarget
    from sinks.iceberg.table import open_table
    from sinks.iceberg.windows import WindowCommitter

    target = IcebergTarget("okta.events", "sqlite", None, os.path.join(root, "iceberg"))
    catalog = load_catalog(target)
    if properties:
        with open_table(catalog, target).transaction() as transaction:
            transaction.set_properties(properties)
    committer = WindowCommitter(target, keep_snapshots=keep, expire_every=expire_every, catalog=catalog)
    times, cpu = [], []
    for w in range(windows):
        rows = window_rows(w, events, True)
        started, started_cpu = time.perf_counter(), time.process_time()
        if path == "streaming":
            committer.commit_rows(rows, {"run-id": f"w{w}"})
        else:
            commit_rows(catalog, target, rows, {"run-id": f"w{w}"})
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)  # all threads of this process: steadier on a shared machine
        if (w + 1) % 100 == 0:
            print(f"  window {w + 1}: commit {statistics.median(times[-5:]):.3f} s, slowest of 20 "
                  f"{max(times[-20:]):.3f} s; CPU median of 20 {statistics.median(cpu[-20:]):.3f} s", flush=True)
        if path == "rows" and keep and (w + 1) % 100 == 0:  # what `tools.maintain --retention` does, by count here
            snapshots = sorted(catalog.load_table(target.table).snapshots(), key=lambda s: s.timestamp_ms)
            if len(snapshots) > keep:
                cutoff = snapshots[-keep].timestamp_ms / 1000
                expire_snapshots(catalog, target.table, dt.datetime.fromtimestamp(cutoff, dt.timezone.utc))

    def query() -> float:
        started = time.perf_counter()
        table = catalog.load_table(target.table)
        day = table.scan(row_filter=f"event_type == '{EVENT_TYPE}' and published >= '{DAY.isoformat()}'"
                         ).to_arrow()
        duckdb.sql("SELECT count(DISTINCT uuid), count(*) FROM day").fetchall()
        del day
        return time.perf_counter() - started

    table = catalog.load_table(target.table)
    out = {"times": times, "cpu": cpu, "commit_s": at_points(times, points), "worst_s": worst_at_points(times, points),
           "cpu_s": {p: statistics.median(cpu[max(0, p - 20):p]) for p in points if p <= len(cpu)},
           "snapshots": len(table.snapshots()), "manifests": len(table.current_snapshot().manifests(table.io))}
    if not compaction:
        return out
    before = {"files": file_count(table), "query_s": query()}
    started = time.perf_counter()
    compact(catalog, target.table)
    compact_s = time.perf_counter() - started
    after = {"files": file_count(catalog.load_table(target.table)), "query_s": query()}
    started = time.perf_counter()
    commit_rows(catalog, target, window_rows(windows, events, True), {"run-id": "after-compaction"})
    after["next_commit_s"] = time.perf_counter() - started
    return {**out, "before": before, "after": after, "compact_s": compact_s}


def hive(windows: int, events: int, root: str, points: list[int]) -> dict:
    from sinks.lake.commit import commit_partition
    from sinks.lake.stage import StagedFile
    from storage import fs
    from transforms.records import PartitionKey

    lake = os.path.join(root, "hive")
    key = PartitionKey(DAY.date().isoformat(), EVENT_TYPE)
    directory = os.path.join(lake, key.path())
    os.makedirs(directory, exist_ok=True)
    out, made = {}, 0
    for point in points:
        if point > windows:
            continue
        while made < point - 1:  # the partition as it is before window `point` commits
            fs.write_parquet(os.path.join(directory, f"part-w{made}.parquet"), window_rows(made, events, False))
            made += 1
        samples = []
        for repeat in range(3):
            staged = os.path.join(lake, "_staging", f"s{point}-{repeat}.parquet")
            fs.write_parquet(staged, window_rows(10_000 + point * 10 + repeat, events, False))
            started = time.perf_counter()
            result = commit_partition(lake, key, [StagedFile(key, staged, events * 2, events)], f"r{point}-{repeat}")
            samples.append(time.perf_counter() - started)
            os.remove(os.path.join(directory, result.files[0]))  # keep the partition at point - 1 files
        out[point] = statistics.median(samples)
    return {"commit_s": out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1440)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--keep_snapshots", type=int, default=0,
                        help="Expire all but this many newest snapshots (0: never); --path rows: every 100 windows")
    parser.add_argument("--path", choices=("rows", "streaming"), default="rows")
    parser.add_argument("--expire_every", type=int, default=10, help="--path streaming: expire every N windows")
    parser.add_argument("--property", action="append", default=[],
                        help="KEY=VALUE table property set before the first window (e.g. "
                             "commit.manifest.min-count-to-merge=10)")
    parser.add_argument("--skip_hive", action="store_true")
    parser.add_argument("--skip_compaction", action="store_true")
    parser.add_argument("--times", help="Write every window's commit time (JSON list, seconds) to this file")
    args = parser.parse_args(argv)
    points = [p for p in (1, 100, 300, 1440) if p <= args.windows] or [args.windows]
    properties = dict(item.split("=", 1) for item in args.property)
    print(describe())
    with tempfile.TemporaryDirectory() as root:
        if not args.skip_hive:
            hive_result = hive(args.windows, args.events, root, points)
            print("hive lake commit_partition, s:", {p: round(v, 4) for p, v in hive_result["commit_s"].items()},
                  flush=True)
        result = iceberg(args.windows, args.events, root, points, args.keep_snapshots, args.path,
                         args.expire_every if args.keep_snapshots else 0, properties, not args.skip_compaction)
    print(f"iceberg path={args.path} keep_snapshots={args.keep_snapshots} expire_every={args.expire_every} "
          f"properties={properties}")
    print("  median of 5, s:", {p: round(v, 4) for p, v in result["commit_s"].items()})
    print("  slowest of 20, s:", {p: round(v, 4) for p, v in result["worst_s"].items()})
    print("  CPU (process time, all threads), median of 20, s:", {p: round(v, 4) for p, v in result["cpu_s"].items()})
    blocks = [statistics.median(result["cpu"][i:i + 120]) for i in range(0, len(result["cpu"]), 120)]
    print("  CPU medians of 120-window blocks, s:", [round(b, 3) for b in blocks])
    if args.times:
        with open(args.times, "w") as handle:
            json.dump({"wall": result["times"], "cpu": result["cpu"]}, handle)
    print(f"  at the end: {result['snapshots']} snapshots, {result['manifests']} manifests in the current one")
    if "before" not in result:
        return 0
    print(f"iceberg before compaction: {result['before']['files']} files, day query "
          f"{result['before']['query_s']:.3f} s")
    print(f"iceberg compaction: {result['compact_s']:.2f} s; after: {result['after']['files']} files, day query "
          f"{result['after']['query_s']:.3f} s, next window's commit {result['after']['next_commit_s']:.4f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
