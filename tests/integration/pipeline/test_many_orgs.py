"""Many orgs in one run (--orgs): per-org budgets, per-org rows and cursors, and isolation of a failing org.

Three local System Log servers stand for three orgs. Rate windows are shortened to 15 s (the limits stay
20, 50 and 120 requests per window), so an org needs several windows while the test stays short.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.support.helpers import load_jsonl, run_pipeline
from tests.support.okta import TOKEN, expected_row_keys, iso, make_events, personal, recent_start

WINDOW = 15


def orgs_file(tmp_path: Path, servers: dict, shares: dict | None = None, **extra) -> Path:
    entries = []
    for name, server in servers.items():
        url = server if isinstance(server, str) else server.url
        entries.append({"url": url, "token_env": f"TOKEN_{name.upper()}",
                        "rate_share": (shares or {}).get(name, 1.0), **extra.get(name, {})})
    path = tmp_path / "orgs.json"
    path.write_text(json.dumps({"orgs": entries}))
    return path


@pytest.fixture
def tokens(monkeypatch):
    for name in ("a", "b", "c"):
        monkeypatch.setenv(f"TOKEN_{name.upper()}", TOKEN)


def host(server) -> str:
    return server.url.split("://", 1)[1]


def lake_keys_by_org(lake: Path) -> dict:
    """{okta_org: Counter((uuid, target_index))} of the whole lake, read the way docs/lake.md says."""
    rows = duckdb.sql(f"SELECT okta_org, uuid, target_index FROM read_parquet('{lake}/event_date=*/event_type=*/"
                      "*.parquet', hive_partitioning=true, union_by_name=true)").fetchall()
    found: dict = {}
    for org, uuid, index in rows:
        found.setdefault(org, Counter())[(uuid, index)] += 1
    return found


def manifest_of(lake: Path, run_id: str) -> dict:
    return json.loads((lake / "_runs" / f"{run_id}.json").read_text())


def requests_per_window(server) -> Counter:
    """The server's /api/v1/logs calls per rate window (its windows are aligned to the epoch)."""
    offset = time.time() - time.monotonic()
    return Counter(math.floor((r.at + offset) / WINDOW) for r in server.stats.records)


def test_one_backfill_of_three_orgs_keeps_each_org_in_its_budget_and_its_rows(okta_server, tokens, tmp_path):
    start = recent_start(3)
    limits = {"a": 20, "b": 50, "c": 120}
    shares = {"a": 0.5, "b": 0.5, "c": 1.0}
    counts = {"a": 100, "b": 240, "c": 300}
    events = {name: make_events(n, start, dt.timedelta(seconds=20), salt=i + 1)
              for i, (name, n) in enumerate(counts.items())}
    servers = {name: okta_server(events[name], rate_limit=limits[name], rate_window_seconds=WINDOW)
               for name in limits}
    lake = tmp_path / "lake"
    run = run_pipeline("--source=okta", f"--orgs={orgs_file(tmp_path, servers, shares)}",
                       f"--since={iso(start)}", f"--until={iso(start + dt.timedelta(hours=2))}", "--slice=30m",
                       "--okta_page_limit=5", f"--output={lake}", "--run_id=three")
    assert run.code == 0, run.stderr + run.stdout

    by_org = lake_keys_by_org(lake)
    assert set(by_org) == {host(s) for s in servers.values()}
    for name, server in servers.items():
        assert by_org[host(server)] == expected_row_keys(events[name]), name
        used = requests_per_window(server)
        budget = math.floor(limits[name] * shares[name])
        assert max(used.values()) <= budget, (name, used, budget)
        assert 429 not in server.stats.by_status, name
    assert len(requests_per_window(servers["a"])) >= 2  # org a needed more than one window's budget

    manifest = manifest_of(lake, "three")
    for name, server in servers.items():
        entry = manifest["orgs"][host(server)]
        assert entry["status"] == "ok" and entry["error"] is None
        assert entry["events_written"] == len(personal(events[name]))
        assert entry["rows_written"] == sum(expected_row_keys(events[name]).values())
    assert sum(e["events_written"] for e in manifest["orgs"].values()) == run.count("events written")
    assert [o["org"] for o in manifest["org_sources"]] == [host(s) for s in servers.values()]
    assert all(TOKEN not in json.dumps(o) for o in manifest["org_sources"])
    for server in servers.values():
        line = next(line for line in run.stdout.splitlines() if line.strip().startswith(host(server) + ":"))
        assert line.rstrip().endswith("rows)") and "-> OK" in line, line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_run_whose_only_failed_org_is_down_exits_75_to_be_rerun_as_is(okta_server, tokens, fast_retries, tmp_path):
    """A scheduler may rerun at once: the down org may be back, the healthy one's rows are not written twice."""
    start = recent_start(2)
    a = okta_server(make_events(40, start, dt.timedelta(seconds=30), salt=1))
    down = f"http://127.0.0.1:{_free_port()}"
    run = run_pipeline("--source=okta", f"--orgs={orgs_file(tmp_path, {'a': a, 'c': down})}",
                       f"--state={tmp_path / 'state'}", f"--output={tmp_path / 'lake'}")
    assert run.code == 75, run.stderr + run.stdout
    [error] = [line for line in run.stderr.splitlines() if line.startswith("error: org ")]
    assert down.split("//")[1] in error and "no response" in error and error.endswith("(retryable: rerun as is)")


def _revoke_after(server, requests: int) -> threading.Thread:
    def watch():
        deadline = time.monotonic() + 60
        while server.stats.requests < requests and time.monotonic() < deadline:
            time.sleep(0.002)
        server.revoke_token()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_revoked_org_and_a_down_org_do_not_stop_the_third_and_the_rerun_heals(
        okta_server, tokens, fast_retries, tmp_path):
    start = recent_start(2)
    events = {name: make_events(n, start, dt.timedelta(seconds=30), salt=i + 1)
              for i, (name, n) in enumerate({"a": 80, "b": 120, "c": 60}.items())}
    a = okta_server(events["a"])
    b = okta_server(events["b"], rate_limit=600, rate_window_seconds=60)  # paced: ~10 calls a second
    down_port = _free_port()  # nothing listens there: org c is down
    servers = {"a": a, "b": b, "c": f"http://127.0.0.1:{down_port}"}
    lake, state = tmp_path / "lake", tmp_path / "state"
    orgs = orgs_file(tmp_path, servers)
    watcher = _revoke_after(b, 3)
    run = run_pipeline("--source=okta", f"--orgs={orgs}", f"--state={state}", "--okta_page_limit=5",
                       f"--output={lake}", "--run_id=faulty")
    watcher.join()
    assert run.code == 1, run.stderr + run.stdout  # fatal: one org needs a new token before a rerun helps
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: org ")]
    assert len(errors) == 2, run.stderr
    assert any(host(b) in line and "401" in line and line.endswith("(fatal: fix the cause before rerunning)")
               for line in errors), errors
    assert any(f"127.0.0.1:{down_port}" in line and line.endswith("(retryable: rerun as is)")
               for line in errors), errors
    assert TOKEN not in run.stderr + run.stdout

    assert all("nothing of it was committed and its cursor was not stored" in line for line in errors), errors

    by_org = lake_keys_by_org(lake)
    assert by_org[host(a)] == expected_row_keys(events["a"])  # the healthy org: exact
    # The revoked org delivered pages before the 401, but nothing of it is committed; nothing of the down
    # org either, and neither has a cursor: the next run reads both from where they were.
    assert set(by_org) == {host(a)}
    assert any(status == 200 for status in b.stats.by_status)  # b did deliver pages before its 401
    cursors = sorted(p.name for p in state.iterdir())
    assert cursors == [host(a).replace(":", "_") + ".json"]
    stored = json.loads((state / cursors[0]).read_text())
    assert stored["org_url"] == a.url and stored["run_id"] == "faulty"
    manifest = manifest_of(lake, "faulty")
    assert manifest["orgs"][host(a)]["status"] == "ok"
    assert manifest["orgs"][host(b)]["status"] == "failed" and "401" in manifest["orgs"][host(b)]["error"]
    assert manifest["orgs"][host(b)]["events_written"] == 0 and manifest["orgs"][host(b)]["withheld_events"] > 0
    assert manifest["orgs"][f"127.0.0.1:{down_port}"]["status"] == "failed"
    assert_balanced_per_org(run)

    # Heal: a new token for b, and org c comes up (on its port), with its events.
    b.restore_token()
    c = okta_server(events["c"], port=down_port)
    run = run_pipeline("--source=okta", f"--orgs={orgs}", f"--state={state}", "--okta_page_limit=5",
                       f"--output={lake}", "--run_id=healed")
    assert run.code == 0, run.stderr + run.stdout
    by_org = lake_keys_by_org(lake)
    for name, server in (("a", a), ("b", b), ("c", c)):
        assert by_org[host(server)] == expected_row_keys(events[name]), name  # every row once
    assert len(list(state.iterdir())) == 3
    healed = manifest_of(lake, "healed")["orgs"]
    assert healed[host(a)]["events_written"] == 0  # a's cursor had moved: nothing new
    assert healed[host(c)]["events_written"] == len(personal(events["c"]))
    # Nothing of b was committed before: every one of its events is written now, none is a duplicate.
    assert healed[host(b)]["events_written"] == len(personal(events["b"]))
    assert healed[host(b)]["duplicates_in_lake"] == 0


def summary_per_org(run) -> dict:
    """{org: (read, written, filtered, duplicates, dead letters, withheld, verdict)} from the summary's lines."""
    found = {}
    for line in run.stdout.splitlines():
        match = re.match(r"\s+(\S+): ([\d,]+) = ([\d,]+) \+ ([\d,]+) \+ ([\d,]+) \+ ([\d,]+) \+ ([\d,]+) -> (\w+)",
                         line)
        if match:
            numbers = [int(n.replace(",", "")) for n in match.groups()[1:7]]
            found[match.group(1)] = (*numbers, match.group(8))
    return found


def assert_balanced_per_org(run) -> dict:
    """Each org's summary line adds up (checked here, not taken from the verdict), and so do the totals."""
    per_org = summary_per_org(run)
    assert per_org, run.stdout
    for org, (read, *terms, verdict) in per_org.items():
        assert read == sum(terms) and verdict == "OK", (org, read, terms, verdict)
    terms = ("events written", "filtered out", "duplicates", "dead letters", "withheld")
    assert run.count("events read") == sum(run.count(term) for term in terms), run.stdout
    assert run.count("events read") == sum(counts[0] for counts in per_org.values())
    return per_org


def bad_event(template: dict, published: dt.datetime, salt: int) -> dict:
    """A personal event whose target is not an array: a flatten-stage dead letter."""
    return {**template, "uuid": f"bad-{salt}", "eventType": "personal.user.update", "published": iso(published),
            "target": "not-a-list"}


def dead_letters_by_org(lake: Path, run_id: str) -> Counter:
    """How many dead letters of each org the run committed (``_dead_letter/<run>/*.jsonl``)."""
    records = [record for path in sorted((lake / "_dead_letter" / run_id).glob("*.jsonl"))
               for record in load_jsonl(path)]
    return Counter(record.get("okta_org") for record in records)


def iceberg_keys_by_org(lake: Path) -> dict:
    from sinks.iceberg.catalog import load_catalog
    from sinks.iceberg.settings import IcebergTarget

    table = load_catalog(IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))).load_table("okta.events")
    arrow = table.scan(selected_fields=("okta_org", "uuid", "target_index")).to_arrow()
    found: dict = {}
    for org, uuid, index in zip(*(arrow.column(c).to_pylist() for c in ("okta_org", "uuid", "target_index"))):
        found.setdefault(org, Counter())[(uuid, index)] += 1
    return found


def _after_requests(server, requests: int, action) -> threading.Thread:
    """Run ``action`` once ``server`` answered ``requests`` calls (the org has delivered pages by then)."""
    def watch():
        deadline = time.monotonic() + 60
        while server.stats.requests < requests and time.monotonic() < deadline:
            time.sleep(0.002)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_backfill_commits_nothing_of_an_org_that_fails_mid_run_and_the_rerun_completes_it(
        okta_server, tokens, fast_retries, tmp_path):
    """One org answers 401 and one goes down, each after delivering pages (and a dead letter): neither leaves
    a row or a dead letter in the lake or in Iceberg; the healthy org is exact; the rerun completes both once."""
    start = recent_start(2)
    events = {name: make_events(n, start, dt.timedelta(seconds=30), salt=i + 1)
              for i, (name, n) in enumerate({"a": 60, "b": 120, "c": 120}.items())}
    bad = {name: bad_event(events[name][1], start, i + 1) for i, name in enumerate("abc")}
    served = {name: [bad[name]] + events[name] for name in "abc"}
    paced = {"rate_limit": 600, "rate_window_seconds": 60}  # ~10 calls a second: the faults come mid-run
    a = okta_server(served["a"])
    b = okta_server(served["b"], **paced)
    c = okta_server(served["c"], **paced)
    c_port = int(c.url.rsplit(":", 1)[1])
    servers = {"a": a, "b": b, "c": c}
    lake = tmp_path / "lake"
    args = ["--source=okta", f"--orgs={orgs_file(tmp_path, servers)}", f"--since={iso(start)}",
            f"--until={iso(start + dt.timedelta(hours=1, minutes=30))}", "--slice=30m", "--okta_page_limit=5",
            f"--output={lake}", "--iceberg_table=okta.events"]
    watchers = [_after_requests(b, 5, b.revoke_token), _after_requests(c, 5, c.stop)]
    run = run_pipeline(*args, "--run_id=faulty")
    for watcher in watchers:
        watcher.join()
    assert run.code == 1, run.stderr + run.stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: org ")]
    assert sorted(line.split()[2] for line in errors) == sorted([host(b), host(c)]), run.stderr
    assert all("nothing of it was committed; rerun the backfill to complete it, without duplicates" in line
               for line in errors), errors
    assert any(host(b) in line and "401" in line for line in errors), errors

    # The lake (read as docs/lake.md says), its dead letters and Iceberg hold the healthy org only, exactly.
    assert lake_keys_by_org(lake) == {host(a): expected_row_keys(events["a"])}
    assert dead_letters_by_org(lake, "faulty") == Counter({host(a): 1})
    assert iceberg_keys_by_org(lake) == {host(a): expected_row_keys(events["a"])}
    assert not list(lake.glob("_staging/*/*"))  # the staged files of the failed orgs are gone with the staging

    manifest = manifest_of(lake, "faulty")
    per_org = assert_balanced_per_org(run)
    for server in (b, c):
        entry = manifest["orgs"][host(server)]
        assert entry["status"] == "failed"
        assert (entry["events_written"], entry["rows_written"], entry["duplicates_in_lake"]) == (0, 0, 0)
        # It delivered pages before failing (its bad event among them): all withheld, and counted so.
        assert entry["withheld_events"] > 0 and entry["withheld_dead_letters"] == 1, entry
        read, written, _filtered, _duplicates, dead, withheld, _ = per_org[host(server)]
        assert (written, dead, withheld) == (0, 0, entry["withheld_events"] + 1)
        assert 0 < read < len(served["b"])  # it failed part way
    assert manifest["orgs"][host(a)]["events_written"] == len(personal(events["a"]))
    assert (manifest["orgs"][host(a)]["withheld_events"], manifest["orgs"][host(a)]["withheld_dead_letters"]) == (0, 0)
    assert manifest["withheld_events"] == sum(manifest["orgs"][host(s)]["withheld_events"] for s in (b, c))
    assert manifest["withheld_dead_letters"] == 2
    assert run.count("withheld") == manifest["withheld_events"] + 2
    assert run.count("withheld dead letters") == 2
    assert run.count("dead letters") == 1  # the committed ones: a's
    assert all(host(b) not in p["partition"] for p in manifest["partitions"])

    # Heal: b's token is issued anew, c comes back on its port. The rerun completes both, each event once.
    b.restore_token()
    c = okta_server(served["c"], port=c_port, **paced)
    run = run_pipeline(*args, "--run_id=healed")
    assert run.code == 0, run.stderr + run.stdout
    assert_balanced_per_org(run)
    want = {host(server): expected_row_keys(events[name]) for name, server in (("a", a), ("b", b), ("c", c))}
    assert lake_keys_by_org(lake) == want  # Counter equality: every row exactly once
    assert iceberg_keys_by_org(lake) == want
    assert dead_letters_by_org(lake, "healed") == Counter({host(s): 1 for s in (a, b, c)})
    healed = manifest_of(lake, "healed")
    for name, server in (("b", b), ("c", c)):
        entry = healed["orgs"][host(server)]
        # Nothing of it was committed by the faulty run: all of its events are new now.
        assert (entry["events_written"], entry["duplicates_in_lake"]) == (len(personal(events[name])), 0), entry
        assert (entry["withheld_events"], entry["withheld_dead_letters"]) == (0, 0)
    assert healed["orgs"][host(a)]["duplicates_in_lake"] == len(personal(events["a"]))
    assert healed["withheld_events"] == healed["withheld_dead_letters"] == 0


def _wait_for_orgs(lake: Path, want: dict, process, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the tail exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            got = lake_keys_by_org(lake) if list(lake.glob("event_date=*/event_type=*/*.parquet")) else {}
        except Exception:  # noqa: BLE001 - a file renamed while listed: look again
            got = {}
        if all(set(keys) <= set(got.get(org, {})) for org, keys in want.items()):
            return
        time.sleep(0.5)
    pytest.fail(f"after {timeout} s the lake lacks rows:\n{log.read_text()[-3000:]}")


def test_a_streaming_tail_of_three_orgs_pauses_a_revoked_one_and_resumes_each_from_its_cursor(
        okta_server, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.support.helpers import REPO

    now = dt.datetime.now(dt.timezone.utc)
    history = {name: make_events(60, now - dt.timedelta(hours=2), dt.timedelta(seconds=5), salt=i + 1)
               for i, name in enumerate("abc")}
    servers = {name: okta_server(history[name]) for name in "abc"}
    lake, state, log = tmp_path / "lake", tmp_path / "state", tmp_path / "tail.log"
    orgs = orgs_file(tmp_path, servers)
    env = {**os.environ, **{f"TOKEN_{n.upper()}": TOKEN for n in "abc"}}
    command = [sys.executable, "-m", "pipeline", "--streaming", "--source=okta", f"--orgs={orgs}",
               f"--state={state}", f"--output={lake}", "--window=2s", "--poll_interval=1s", "--lookback=1d"]

    def start():
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    def kill(process):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def fresh(salt: int) -> list[dict]:
        return make_events(10, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1),
                           dt.timedelta(milliseconds=10), salt=salt)

    appended = {name: [] for name in "abc"}
    run = start()
    try:
        _wait_for_orgs(lake, {host(s): expected_row_keys(history[n]) for n, s in servers.items()}, run, log)
        servers["b"].revoke_token()  # b is paused with backoff; a and c keep committing
        for round_ in range(3):
            for i, name in enumerate("abc"):
                batch = fresh(100 + 10 * round_ + i)
                servers[name].append(batch)
                appended[name] += batch
            time.sleep(1.5)
        _wait_for_orgs(lake, {host(servers[n]): expected_row_keys(history[n] + appended[n]) for n in "ac"}, run, log)
        assert f"warning: org {host(servers['b'])} paused" in log.read_text()
        assert not set(expected_row_keys(appended["b"])) & set(lake_keys_by_org(lake).get(host(servers["b"]), {}))
    finally:
        kill(run)  # killed mid-stream: whatever was read but not committed is read again from the cursors

    servers["b"].restore_token()
    for i, name in enumerate("abc"):
        batch = fresh(200 + i)
        servers[name].append(batch)
        appended[name] += batch
    rerun = start()
    try:
        _wait_for_orgs(lake, {host(s): expected_row_keys(history[n] + appended[n]) for n, s in servers.items()},
                       rerun, log)
    finally:
        kill(rerun)
    by_org = lake_keys_by_org(lake)
    for name, server in servers.items():
        assert by_org[host(server)] == expected_row_keys(history[name] + appended[name]), name  # each row once
    assert sorted(p.name for p in state.iterdir()) == sorted(host(s).replace(":", "_") + ".json"
                                                            for s in servers.values())
    assert TOKEN not in log.read_text()


def test_a_tail_org_that_fails_mid_poll_commits_nothing_of_it_and_its_cursor_stays(
        okta_server, tmp_path, monkeypatch):
    """The streaming side of isolation, tick by tick (OrgTail, the code both runners tick): pages an org
    delivered in a poll are dropped when it fails before the poll caught up (a poll commits only then, or when
    its window ends), its cursor stays where the last commit left it, and after the pause it reads them again,
    each row once."""
    from okta_client import SystemLogClient
    from okta_client.auth import SswsAuth
    from sources.okta.orgs import parse_orgs
    from streaming import okta_tail
    from streaming.settings import TailSettings
    from tests.support.helpers import window_settings
    from transforms.selection import DEFAULT_EVENT_TYPES

    now = dt.datetime.now(dt.timezone.utc)
    history = make_events(40, now - dt.timedelta(hours=1), dt.timedelta(seconds=30), salt=7)
    server = okta_server(history)
    monkeypatch.setenv("TOKEN_A", TOKEN)
    lake, state = tmp_path / "lake", tmp_path / "state"
    orgs, problems = parse_orgs({"orgs": [{"url": server.url, "token_env": "TOKEN_A"}]},
                                default_event_types=DEFAULT_EVENT_TYPES, default_rate_share=1.0,
                                state_dir=str(state), page_limit=5)
    assert not problems

    class RevokingClient(SystemLogClient):
        """A real client of the server that revokes the token (the org fails) after ``revoke_after`` pages."""
        revoke_after: int | None = None

        def get_page(self, url, *, bounded):
            page = super().get_page(url, bounded=bounded)
            if self.revoke_after is not None:
                self.revoke_after -= 1
                if self.revoke_after == 0:
                    server.revoke_token()
                    self.revoke_after = None
            return page

    client = RevokingClient(server.url, SswsAuth(TOKEN))
    wall = [6_000_000.0]  # the windows' clock (60 s windows start on multiples of 60)
    pause_clock = [0.0]
    monkeypatch.setattr(okta_tail, "OktaTail",
                        functools.partial(okta_tail.OktaTail, clock=lambda: wall[0], client=client))
    window = window_settings(lake, job="tail", event_types=DEFAULT_EVENT_TYPES, max_payload_bytes=16 << 20)
    tail = okta_tail.org_tail_settings(TailSettings(str(state), dt.timedelta(days=1), 1.0, window), orgs[0], 0)
    org_tail = okta_tail.OrgTail(orgs[0], tail, clock=lambda: pause_clock[0])
    cursor_file = Path(orgs[0].state)

    def tick(seconds: float = 2.0) -> int:
        wall[0] += seconds
        return org_tail.tick()

    def lake_rows() -> Counter:
        return lake_keys_by_org(lake).get(host(server), Counter()) if list(lake.glob("event_date=*")) else Counter()

    def fail_mid_poll(pages: int) -> None:
        client.revoke_after = pages  # full pages read, then a 401 before the poll catches up
        assert tick() == 0 and org_tail.failures == 1  # the org is paused, what its poll read dropped
        server.restore_token()
        pause_clock[0] = org_tail.paused_until + 1

    fail_mid_poll(3)
    assert lake_rows() == Counter() and not cursor_file.exists()  # nothing committed, no cursor
    assert not list(lake.glob("_dead_letter/**/*.jsonl"))
    assert tick() > 0  # read again from the start (no cursor was stored), caught up: committed, cursor stored
    assert lake_rows() == expected_row_keys(history)
    committed_cursor = cursor_file.read_text()

    fresh = make_events(10, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1),
                        dt.timedelta(milliseconds=10), salt=8)
    server.append(fresh)
    fail_mid_poll(1)  # a full page of the fresh events read, then the 401
    assert lake_rows() == expected_row_keys(history)  # nothing of the dropped poll
    assert cursor_file.read_text() == committed_cursor  # the cursor still points before it
    assert tick() > 0  # read again from the stored cursor
    assert lake_rows() == expected_row_keys(history + fresh)  # each row once
    assert cursor_file.read_text() != committed_cursor
    org_tail.close()
