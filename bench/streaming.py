"""Streaming benchmarks: the Okta tail's end-to-end latency and memory, and Pub/Sub throughput.

    python -m bench.streaming tail [--minutes 10] [--rate 20] [--window 30s] [--poll 5s]
    python -m bench.streaming pubsub [--events 50000] [--reader client|beam]
    python -m bench.streaming pubsub-soak [--minutes 30] [--rate 20] [--reader client|beam]

``tail``: starts the local System Log server appending ``--rate`` events/s
(published = persisted = now), tails it with ``--streaming --source=okta``
for ``--minutes``, samples the pipeline's RSS every 10 s, then computes each
committed event's latency: the committed file's modification time minus the
event's persistence time. Target: p95 within window + poll interval + 10 s,
RSS flat.

``pubsub``: publishes ``--events`` one-event messages (all personal) to
Google's Pub/Sub emulator, then runs ``--streaming --source=pubsub`` and
reports events/s from the pipeline's start to the last row committed.

``pubsub-soak``: publishes ``--rate`` messages/s for ``--minutes`` while the
pipeline runs; lost and duplicated rows, latency, RSS by minute. ``--reader``
picks the pipeline's ``--pubsub_reader``; ``--trace FILE`` runs it under
:mod:`bench.memtrace`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds

from bench.machine import describe

REPO = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_by_minute(samples: list[tuple[int, float]]) -> dict:
    """Peak RSS of each minute (the issue's measure: peak at minute 30 vs minute 5) and the growth between them."""
    peaks: dict[int, float] = {}
    for second, mb in samples:
        if mb == mb:  # not NaN
            peaks[second // 60] = max(peaks.get(second // 60, 0.0), mb)
    minutes = sorted(peaks)
    last = minutes[-1] if minutes and minutes[-1] > 5 else None
    growth = round(100 * (peaks[last] / peaks[5] - 1), 1) if last is not None and 5 in peaks else None
    return {"rss_peak_mb_by_minute": {m: round(peaks[m]) for m in minutes},
            "rss_growth_pct_minute5_to_last": growth}


def committed(lake: Path) -> list[tuple[str, float, float]]:
    """(uuid, published epoch s, file mtime) for every row of the lake."""
    out = []
    for path in lake.glob("event_date=*/event_type=*/*.parquet"):
        mtime = path.stat().st_mtime
        table = ds.dataset(str(path), format="parquet").to_table(columns=["uuid", "published"])
        for uuid, published in zip(table.column("uuid").to_pylist(), table.column("published").to_pylist()):
            out.append((uuid, published.timestamp(), mtime))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_tail(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tail-"))
    token = secrets.token_urlsafe(24)
    (tmp / "token").write_text(token)
    server = subprocess.Popen([sys.executable, "-m", "devtools.system_log_server", "--generate", "0",
                               "--append-rate", str(args.rate),
                               "--personal-share", "0.5", "--token-file", str(tmp / "token"), "--ready-file",
                               str(tmp / "ready"), "--rate-limit", "600"], cwd=REPO, stderr=subprocess.DEVNULL)
    try:
        while not (tmp / "ready").exists():
            time.sleep(0.2)
        url = (tmp / "ready").read_text().strip()
        lake = tmp / "lake"
        started = time.time()
        run = subprocess.Popen([sys.executable, "-m", "pipeline", "--streaming", "--source=okta",
                                f"--okta_org_url={url}", f"--state={tmp / 'cursor.json'}", f"--output={lake}",
                                f"--window={args.window}", f"--poll_interval={args.poll}", "--lookback=1h",
                                f"--stop_after={int(args.minutes * 60)}s"], cwd=REPO,
                               env={**os.environ, "OKTA_API_TOKEN": token}, stderr=subprocess.DEVNULL)
        samples = []
        while run.poll() is None:
            samples.append((round(time.time() - started), rss_mb(run.pid)))
            time.sleep(10)
        rows = committed(lake)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Events published before the tail started are a backlog, not latency.
    latencies = [mtime - published for _, published, mtime in rows if published >= started + 5]
    window_s = _seconds(args.window)
    poll_s = _seconds(args.poll)
    rss = [mb for _, mb in samples if mb == mb]
    result = {
        "minutes": args.minutes, "append_rate": args.rate, "window": args.window, "poll": args.poll,
        "rows": len(rows), "events": len({u for u, _, _ in rows}),
        "latency_p50_s": round(percentile(latencies, 0.5), 1), "latency_p95_s": round(percentile(latencies, 0.95), 1),
        "latency_max_s": round(max(latencies), 1), "target_s": window_s + poll_s + 10,
        **rss_by_minute(samples),
        "rss_peak_mb": round(max(rss)),
        "duplicate_rows": duplicate_rows(lake) if lake.exists() else 0,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    print(f"tail: latency p50 {result['latency_p50_s']} s, p95 {result['latency_p95_s']} s (target <= "
          f"{result['target_s']:g} s = window + poll + 10 s); peak RSS by minute {result['rss_peak_mb_by_minute']} MB, "
          f"minute 5 -> last: {result['rss_growth_pct_minute5_to_last']}%")


def _seconds(text: str) -> float:
    from common.durations import parse_duration

    return parse_duration(text, "duration").total_seconds()


def _start_pubsub_pipeline(args, subscription: str, lake: Path, *options: str) -> subprocess.Popen:
    """``--streaming --source=pubsub`` in its own process group (under bench.memtrace with ``--trace``)."""
    trace = getattr(args, "trace", None)
    launcher = (["-m", "bench.memtrace", *shlex.split(args.trace_options), trace, "--"] if trace
                else ["-m", "pipeline"])
    return subprocess.Popen([sys.executable, *launcher, "--streaming", "--source=pubsub",
                             f"--subscription={subscription}", f"--output={lake}", "--quiet",
                             f"--pubsub_reader={args.reader}", *options],
                            cwd=REPO, env=dict(os.environ), stderr=subprocess.DEVNULL, start_new_session=True)


def bench_pubsub(args) -> None:
    sys.path.insert(0, str(REPO))
    from devtools.eventgen import generated_events
    from tests.support.pubsub import started_pubsub_emulator, topic_and_subscription

    tmp = Path(tempfile.mkdtemp(prefix="bench-pubsub-"))
    try:
        with started_pubsub_emulator(tmp / "emulator.log") as host:
            publisher, topic, subscription = topic_and_subscription(host, "okta-lake-bench", "events")
            futures = [publisher.publish(topic, json.dumps(event).encode())
                       for event in generated_events(args.events, seed=5, personal_share=1.0)]
            for future in futures:
                future.result(timeout=120)
            print(f"published {args.events:,} messages", flush=True)
            lake = tmp / "lake"
            started = time.monotonic()
            run = _start_pubsub_pipeline(args, subscription, lake, "--window=10s")
            peak = 0.0
            done_at = None
            while time.monotonic() - started < args.timeout:
                peak = max(peak, rss_mb(run.pid))
                try:
                    events = len({u for u, _, _ in committed(lake)}) if lake.exists() else 0
                except Exception:  # noqa: BLE001 - a file renamed while listed
                    events = -1
                if events >= args.events:
                    done_at = time.monotonic()
                    break
                time.sleep(2)
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if done_at is None:
        raise SystemExit(f"not every event was committed within {args.timeout} s")
    seconds = done_at - started
    print(json.dumps({"reader": args.reader, "events": args.events, "seconds": round(seconds, 1),
                      "events_per_s": round(args.events / seconds), "peak_rss_mb": round(peak)}))
    print(f"pubsub: {args.events:,} one-event messages committed in {seconds:.1f} s from pipeline start = "
          f"{args.events / seconds:,.0f} events/s (includes start-up and the last window's close); peak RSS "
          f"{peak:.0f} MB")


def bench_pubsub_soak(args) -> None:
    """Publish ``--rate`` one-event messages/s for ``--minutes`` while the pipeline runs; RSS and latency."""
    import threading

    sys.path.insert(0, str(REPO))
    from devtools.eventgen import EventGenerator
    from tests.support.pubsub import started_pubsub_emulator, topic_and_subscription

    tmp = Path(tempfile.mkdtemp(prefix="bench-pubsub-soak-"))
    published: dict[str, float] = {}
    lake = tmp / "lake"
    with started_pubsub_emulator(tmp / "emulator.log") as host:
        publisher, topic, subscription = topic_and_subscription(host, "okta-lake-bench", "soak")
        run = _start_pubsub_pipeline(args, subscription, lake, f"--window={args.window}",
                                     f"--dedupe_horizon={args.dedupe_horizon}")
        generator = EventGenerator(seed=9, personal_share=1.0)
        stop = threading.Event()

        def publish():
            sent, started = 0, time.monotonic()
            while not stop.is_set():
                due = int((time.monotonic() - started) * args.rate) - sent
                for _ in range(max(0, due)):
                    now = dt.datetime.now(dt.timezone.utc)
                    event = generator.event(int(now.timestamp() * 1_000_000))
                    if event.get("target") == "missing":
                        del event["target"]
                    published[event["uuid"]] = now.timestamp()
                    publisher.publish(topic, json.dumps(event).encode())
                    sent += 1
                time.sleep(0.05)

        feeder = threading.Thread(target=publish, daemon=True)
        try:
            feeder.start()
            started = time.time()
            samples = []
            while time.time() - started < args.minutes * 60:
                samples.append((round(time.time() - started), rss_mb(run.pid)))
                time.sleep(10)
            stop.set()
            feeder.join()
            deadline = time.time() + 180
            while time.time() < deadline:
                if len({u for u, _, _ in committed(lake)}) >= len(published):
                    break
                time.sleep(5)
            rows = committed(lake)
        finally:
            stop.set()
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    events = {u for u, _, _ in rows}
    latencies = [mtime - published[u] for u, _, mtime in rows if u in published]
    result = {"reader": args.reader, "minutes": args.minutes, "rate": args.rate, "window": args.window,
              "dedupe_horizon": args.dedupe_horizon, "published": len(published),
              "committed_events": len(events), "lost": len(set(published) - events),
              "duplicate_rows": duplicate_rows(lake) if lake.exists() else 0,
              "latency_p50_s": round(percentile(latencies, 0.5), 1),
              "latency_p95_s": round(percentile(latencies, 0.95), 1),
              **rss_by_minute(samples)}
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    print(f"pubsub soak: {result['published']:,} published, {result['committed_events']:,} committed, "
          f"{result['lost']} lost, {result['duplicate_rows']} duplicate rows; latency p50 {result['latency_p50_s']} s, "
          f"p95 {result['latency_p95_s']} s; peak RSS by minute {result['rss_peak_mb_by_minute']} MB, "
          f"minute 5 -> last: {result['rss_growth_pct_minute5_to_last']}%")


def duplicate_rows(lake: Path) -> int:
    table = ds.dataset(str(lake), format="parquet", partitioning="hive").to_table(columns=["uuid", "target_index"])
    keys = list(zip(table.column("uuid").to_pylist(), table.column("target_index").to_pylist()))
    return len(keys) - len(set(keys))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    tail = sub.add_parser("tail")
    tail.add_argument("--minutes", type=float, default=10)
    tail.add_argument("--rate", type=float, default=20)
    tail.add_argument("--window", default="30s")
    tail.add_argument("--poll", default="5s")
    pubsub = sub.add_parser("pubsub")
    pubsub.add_argument("--events", type=int, default=50_000)
    pubsub.add_argument("--timeout", type=float, default=900)
    soak = sub.add_parser("pubsub-soak")
    soak.add_argument("--minutes", type=float, default=30)
    soak.add_argument("--rate", type=float, default=20)
    soak.add_argument("--window", default="1m")
    soak.add_argument("--dedupe_horizon", default="24h")
    for sub_parser in (pubsub, soak):
        sub_parser.add_argument("--reader", choices=["client", "beam"], default="client",
                                help="--pubsub_reader of the pipeline (client: the local loop; beam: ReadFromPubSub)")
        sub_parser.add_argument("--trace", help="run the pipeline under bench.memtrace, appending its report here")
        sub_parser.add_argument("--trace_options", default="", help='bench.memtrace options, e.g. "--trim --every 30"')
    args = parser.parse_args(argv)
    print(f"machine: {describe()}; {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}", flush=True)
    {"tail": bench_tail, "pubsub": bench_pubsub, "pubsub-soak": bench_pubsub_soak}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
