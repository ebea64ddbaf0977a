"""Freshness: how soon an event is queryable after Okta persists it (or after it is published to Pub/Sub).

    python -m bench.freshness okta [--rpm 20] [--minutes 5] [--iceberg] [--per_step 1-5]
    python -m bench.freshness pubsub [--minutes 3]

``okta``: the local System Log server (in this process) with a rate limit of
``--rpm`` requests/min, appending 1-5 events at random moments 1-6 s apart
(three in four personal.*, published = persisted = now), and the tail as a
user starts it: ``--streaming --source=okta`` with no streaming option (and
``--iceberg_table`` with ``--iceberg``). An event's freshness is the start of
the first DuckDB query (the README's glob, every 0.5 s) that sees it, minus
the moment the server made it visible; with ``--iceberg``, likewise for a scan
of the table (every second). Prints p50/p95/p99/max, the tail's requests per
minute and their share of the limit (the whole run, and its busiest
rate-limit minute), the files each partition holds at the end, the tail's CPU, and
whether every personal event landed exactly once.

``pubsub``: Google's Pub/Sub emulator, the same random trickle published as
one-event messages, and ``--streaming --source=pubsub`` with no streaming
option; freshness from the moment each message was published.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.machine import describe

REPO = Path(__file__).resolve().parent.parent
GLOB = "event_date=*/event_type=*/*.parquet"


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 1)) - 1))], 1)

    return {"p50_s": at(0.5), "p95_s": at(0.95), "p99_s": at(0.99), "max_s": round(ordered[-1], 1),
            "events": len(ordered)}


class Background:
    """A daemon thread running ``_run`` until ``join()`` sets ``stop``."""

    def __init__(self, name: str):
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self):
        self._thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class Trickle(Background):
    """1-5 events at random moments 1-6 s apart, until stopped; ``visible[uuid]`` = when each became visible."""

    def __init__(self, send, personal_share: float = 0.75, seed: int = 11, per_step: tuple[int, int] = (1, 5)):
        from devtools.eventgen import EventGenerator

        self._send, self._rng, self._per_step = send, random.Random(seed), per_step
        self._generator = EventGenerator(seed=seed, personal_share=personal_share)
        self.visible: dict[str, float] = {}  # personal events only: the ones the lake must hold
        self.sent = 0
        super().__init__("trickle")

    def _run(self) -> None:
        while not self.stop.wait(self._rng.uniform(1.0, 6.0)):
            now = time.time()
            events = [self._generator.event(int(now * 1_000_000)) for _ in range(self._rng.randint(*self._per_step))]
            for event in events:
                if event.get("target") == "missing":
                    del event["target"]
            at = time.time()  # before the send: a conservative start
            self._send(events)
            self.sent += len(events)
            for event in events:
                if event["eventType"].startswith("personal."):
                    self.visible[event["uuid"]] = at


class Watcher(Background):
    """Runs ``query()`` (the uuids a reader sees) every ``every`` s; ``seen[uuid]`` = start of the first that saw it."""

    def __init__(self, query, every: float):
        self._query, self._every = query, every
        self.seen: dict[str, float] = {}
        self.queries = 0
        super().__init__("watcher")

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.time()
            try:
                uuids = self._query()
            except Exception:  # noqa: BLE001 - nothing committed yet, or a file renamed while listed
                uuids = ()
            self.queries += 1
            for uuid in uuids:
                self.seen.setdefault(uuid, started)
            self.stop.wait(max(0.0, self._every - (time.time() - started)))


def lake_query(lake: Path):
    import duckdb

    connection = duckdb.connect()
    sql = f"SELECT DISTINCT uuid FROM read_parquet('{lake}/{GLOB}', hive_partitioning=true)"
    return lambda: [row[0] for row in connection.execute(sql).fetchall()]


def table_query(lake: Path):
    from sinks.iceberg.catalog import load_catalog
    from sinks.iceberg.settings import IcebergTarget

    target = IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))

    def scan():
        table = load_catalog(target).load_table("okta.events")
        return table.scan(selected_fields=("uuid",)).to_arrow().column("uuid").to_pylist()
    return scan


def lake_duplicates(lake: Path) -> int:
    import duckdb

    return duckdb.connect().execute(
        f"SELECT count(*) FROM (SELECT uuid, target_index FROM read_parquet('{lake}/{GLOB}', hive_partitioning=true) "
        "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]


def table_duplicates(lake: Path) -> int:
    from sinks.iceberg.catalog import load_catalog
    from sinks.iceberg.settings import IcebergTarget

    table = load_catalog(IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))).load_table("okta.events")
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    keys = Counter(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()))
    return sum(n - 1 for n in keys.values() if n > 1)


def files_per_partition(lake: Path, hours: float) -> dict:
    """The Parquet files each partition holds at the end (the stream's compaction folds window files older than
    its settle time, so this stays bounded however long the run), and per hour of the run."""
    counts = [len(list(partition.glob("*.parquet"))) for partition in lake.glob("event_date=*/event_type=*")]
    if not counts or hours <= 0:
        return {}
    return {"partitions": len(counts), "files_per_partition_at_end_mean": round(sum(counts) / len(counts), 1),
            "files_per_partition_at_end_max": max(counts),
            "files_per_partition_hour_max": round(max(counts) / hours)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def freshness(visible: dict[str, float], seen: dict[str, float]) -> dict:
    return {**percentiles([seen[u] - at for u, at in visible.items() if u in seen]),
            "missing": len(set(visible) - set(seen))}


def run_tail_until_seen(command: list[str], env: dict, log: Path, trickle: Trickle, watchers: list[Watcher],
                        minutes: float) -> dict:
    """Start the pipeline, trickle for ``minutes``, wait until every watcher saw every event, then stop it (SIGINT,
    so it prints its summary); returns wall seconds, CPU seconds and the monotonic span of the trickle."""
    run = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        time.sleep(8)  # its start-up (imports, the first poll) is not freshness
        begin, cpu_begin = time.monotonic(), cpu_seconds(run.pid)
        for watcher in watchers:
            watcher.start()
        trickle.start()
        time.sleep(minutes * 60)
        trickle.join()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(set(trickle.visible) <= set(w.seen) for w in watchers):
            if run.poll() is not None:
                raise SystemExit(f"the pipeline stopped:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        end, cpu_end = time.monotonic(), cpu_seconds(run.pid)
        for watcher in watchers:
            watcher.join()
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    return {"begin": begin, "end": end, "cpu_percent": round(100 * (cpu_end - cpu_begin) / (end - begin), 1)}


def summary_lines(log: Path) -> list[str]:
    return [line.strip() for line in log.read_text(errors="replace").splitlines() if "-> committed" in line]


def bench_okta(args) -> dict:
    from devtools.system_log_server import EmulatorConfig, SystemLogServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    token = secrets.token_urlsafe(24)
    lake = tmp / "lake"
    with SystemLogServer(EmulatorConfig(token=token, rate_limit=args.rpm)) as server:
        trickle = Trickle(server.append, per_step=args.per_step)
        watchers = [Watcher(lake_query(lake), 0.5)] + ([Watcher(table_query(lake), 1.0)] if args.iceberg else [])
        command = [sys.executable, "-m", "pipeline", "--streaming", "--source=okta", f"--okta_org_url={server.url}",
                   f"--state={tmp / 'cursor.json'}", f"--output={lake}"]
        command += ["--iceberg_table=okta.events"] if args.iceberg else []
        timing = run_tail_until_seen(command, {**os.environ, "OKTA_API_TOKEN": token}, tmp / "tail.log", trickle,
                                     watchers, args.minutes)
        records = server.stats.records
    minutes = (timing["end"] - timing["begin"]) / 60
    during = [r.at for r in records if timing["begin"] <= r.at <= timing["end"]]
    busiest = max(Counter(int((at - timing["begin"]) // 60) for at in during).values(), default=0)
    result = {
        "what": "okta", "rpm_limit": args.rpm, "minutes": round(minutes, 1), "appended": trickle.sent,
        "personal": len(trickle.visible), "lake": freshness(trickle.visible, watchers[0].seen),
        "requests_per_min": round(len(during) / minutes, 1),
        "share_of_limit_pct": round(100 * len(during) / minutes / args.rpm, 1),
        "busiest_minute_requests": busiest, "status_429": sum(1 for r in records if r.status == 429),
        **files_per_partition(lake, minutes / 60), "tail_cpu_percent": timing["cpu_percent"],
        "lake_duplicate_rows": lake_duplicates(lake), "summary": summary_lines(tmp / "tail.log"),
    }
    if args.iceberg:
        result["iceberg"] = freshness(trickle.visible, watchers[1].seen)
        result["iceberg_duplicate_rows"] = table_duplicates(lake)
    return result


def bench_pubsub(args) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.support.pubsub import started_pubsub_emulator, topic_and_subscription

    tmp = Path(tempfile.mkdtemp(prefix="bench-freshness-pubsub-"))
    lake = tmp / "lake"
    with started_pubsub_emulator(tmp / "emulator.log") as host:
        publisher, topic, subscription = topic_and_subscription(host, "okta-lake-bench", "fresh")

        def send(events):
            for future in [publisher.publish(topic, json.dumps(event).encode()) for event in events]:
                future.result(timeout=60)

        trickle = Trickle(send)
        watcher = Watcher(lake_query(lake), 0.5)
        command = [sys.executable, "-m", "pipeline", "--streaming", "--source=pubsub", f"--subscription={subscription}",
                   f"--output={lake}"]
        timing = run_tail_until_seen(command, dict(os.environ), tmp / "loop.log", trickle, [watcher], args.minutes)
    minutes = (timing["end"] - timing["begin"]) / 60
    return {"what": "pubsub", "minutes": round(minutes, 1), "published": trickle.sent,
            "personal": len(trickle.visible), "lake": freshness(trickle.visible, watcher.seen),
            **files_per_partition(lake, minutes / 60), "loop_cpu_percent": timing["cpu_percent"],
            "lake_duplicate_rows": lake_duplicates(lake), "summary": summary_lines(tmp / "loop.log")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    okta = sub.add_parser("okta")
    okta.add_argument("--rpm", type=int, default=20, help="the server's rate limit, requests per minute")
    okta.add_argument("--minutes", type=float, default=5)
    okta.add_argument("--iceberg", action="store_true", help="also commit an Iceberg table and time its scans")
    okta.add_argument("--per_step", type=lambda text: tuple(int(n) for n in text.split("-", 1)), default=(1, 5),
                      help="events appended at each random moment, LOW-HIGH (default 1-5; a busy org: 500-1000, "
                           "more between two polls than a page holds)")
    pubsub = sub.add_parser("pubsub")
    pubsub.add_argument("--minutes", type=float, default=3)
    args = parser.parse_args(argv)
    print(f"machine: {describe()}; {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}", flush=True)
    result = (bench_okta if args.what == "okta" else bench_pubsub)(args)
    print(json.dumps(result), flush=True)
    for output in ("lake", "iceberg"):
        if output in result:
            f = result[output]
            print(f"{args.what} {output}: p50 {f.get('p50_s')} s, p95 {f.get('p95_s')} s, p99 {f.get('p99_s')} s, "
                  f"max {f.get('max_s')} s over {f.get('events')} events, {f['missing']} missing", flush=True)
    if "requests_per_min" in result:
        print(f"requests: {result['requests_per_min']}/min = {result['share_of_limit_pct']}% of {args.rpm}; "
              f"busiest minute {result['busiest_minute_requests']}; 429s {result['status_429']}", flush=True)
    if "partitions" in result:
        print(f"files: {result['partitions']} partitions holding {result['files_per_partition_at_end_mean']} "
              f"(max {result['files_per_partition_at_end_max']}) Parquet files each at the end", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
