"""The Okta tail commits on time and spends requests as a budget, against the local System Log server.

The first tests drive :class:`streaming.okta_tail.OktaTail` in this process with a clock of their own (a
virtual second per request or per tick), so what they check about windows and polls does not depend on how
fast this machine is; the budget and kill tests run the tail as a process.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from okta_client import SswsAuth, SystemLogClient
from okta_client.ratelimit import RateGovernor
from sources.okta.connect import OktaSettings
from streaming.okta_tail import OktaTail, auto_poll_interval
from streaming.settings import TailSettings
from tests.support import kill_points
from tests.support.helpers import window_settings
from tests.support.iceberg import lake_table_keys, wait_for_table
from tests.support.okta import TOKEN, assert_lake_exact, expected_row_keys, make_events, wait_for_lake
from tests.support.stream import start_stream, stop

STEP = dt.timedelta(milliseconds=10)
UTC = dt.timezone.utc
EPOCH = 1_800_000_000.0  # the virtual clocks start here (a window boundary for any length that divides 60)


class RecordingClient(SystemLogClient):
    """A real client of the server that notes, per event, the (virtual) moment its page arrived, and may feed
    the server as each page is read (a steady trickle while the chain is followed)."""

    def __init__(self, server, clock, governor=None, feed=None):
        super().__init__(server.url, SswsAuth(TOKEN), governor=governor)
        self.clock, self.feed, self.received, self.sizes = clock, feed, {}, []

    def get_page(self, url, *, bounded):
        page = super().get_page(url, bounded=bounded)
        for event in page.events:
            self.received[event["uuid"]] = self.clock()
        self.sizes.append(len(page.events))
        if self.feed is not None:
            self.feed()
        return page


def tail_settings(tmp_path, length: float, poll_interval: float | None) -> TailSettings:
    return TailSettings(state_uri=str(tmp_path / "cursor.json"), lookback=dt.timedelta(days=1),
                        poll_interval=poll_interval, window=window_settings(tmp_path / "lake", length=length))


def window_of(path) -> float:
    """The start (epoch seconds) of the window a committed file is named after."""
    stamp = re.search(r"part-w(\d{8}T\d{6}Z)-", path.name).group(1)
    return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def test_a_window_never_holds_rows_read_after_its_end_while_a_steady_trickle_keeps_the_chain_full(
        okta_server, tmp_path):
    # A backlog, and while the tail follows the chain, four new events per page read: every page is full, so
    # the chain never reaches a short page for 30 pages. A virtual second passes per request; windows of 3 s.
    start = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    backlog = make_events(40, start, STEP, personal_every=1)
    server = okta_server(backlog)
    trickle, fed = [], [0]

    def feed():
        if fed[0] < 30:
            fresh = make_events(4, dt.datetime.now(UTC) - dt.timedelta(seconds=1), STEP, personal_every=1,
                                salt=100 + fed[0])
            server.append(fresh)
            trickle.extend(fresh)
            fed[0] += 1

    ticks = [0]
    client = RecordingClient(server, lambda: EPOCH + server.stats.requests + ticks[0], feed=feed)
    tail = OktaTail(OktaSettings(server.url, page_limit=4), tail_settings(tmp_path, 3, 1.0), clock=client.clock,
                    client=client)
    while fed[0] < 30 or client.sizes[-1] == 4:
        tail.tick()
        ticks[0] += 1
    tail.tick()
    tail.close()

    assert client.sizes[:30] == [4] * 30  # the chain stayed full the whole time: no caught-up moment to commit at
    files = list((tmp_path / "lake").glob("event_date=*/event_type=*/*.parquet"))
    windows = Counter()
    for path in files:
        begin = window_of(path)
        for uuid in set(pq.read_table(path, columns=["uuid"]).column("uuid").to_pylist()):
            assert begin <= client.received[uuid] < begin + 3, (path.name, client.received[uuid] - begin)
            windows[begin] += 1
    assert len(windows) >= 10  # committed window by window while the chain was followed, not at its end
    assert_lake_exact(tmp_path / "lake", backlog + trickle)


def test_a_short_page_ends_a_poll_and_an_idle_tail_asks_once_per_poll(okta_server, tmp_path):
    # 10 events, 4 a page: the first poll reads 4, 4 and 2 (short: caught up) and never asks for the empty
    # page after them. Idle, each poll is one request, at auto's pace for the limit Okta reports (20/min: 45%).
    events = make_events(10, dt.datetime.now(UTC) - dt.timedelta(hours=1), STEP, personal_every=1)
    server = okta_server(events, rate_limit=20)
    now = [EPOCH]
    client = RecordingClient(server, lambda: now[0], governor=RateGovernor(pace=False))
    tail = OktaTail(OktaSettings(server.url, page_limit=4), tail_settings(tmp_path, 10, None), clock=client.clock,
                    client=client)
    tail.tick()
    assert client.sizes == [4, 4, 2] and server.stats.requests == 3
    assert_lake_exact(tmp_path / "lake", events)  # committed at the end of the poll, not at the window's end

    for _ in range(60):  # an idle virtual minute, a tick a second
        now[0] += 1
        tail.tick()
    idle = server.stats.requests - 3
    assert client.sizes[3:] == [0] * idle
    assert 8 <= idle <= 0.45 * 20, idle
    appended = make_events(2, dt.datetime.now(UTC), STEP, personal_every=1, salt=7)
    server.append(appended)
    for _ in range(7):
        now[0] += 1
        tail.tick()
    tail.close()
    assert_lake_exact(tmp_path / "lake", events + appended)


def test_the_auto_poll_interval_keeps_an_idle_tail_under_half_the_limit():
    for limit in (20, 25, 50, 120, 600):
        interval = auto_poll_interval(limit, 1.0)
        assert 60 / interval <= 0.45 * limit + 1e-9 and interval >= 6.0
    assert auto_poll_interval(120, 1.0) == 6.0  # 10 requests/min: 8% of a 120/min org
    assert auto_poll_interval(None, 1.0) == auto_poll_interval(20, 1.0)  # before Okta's first answer
    assert 60 / auto_poll_interval(20, 0.25) <= 0.25 * 20  # a small --okta_rate_share lowers it


def test_a_backlog_drains_at_the_rate_share_and_no_faster(okta_server, tmp_path):
    # 12 requests per 3-second window, half of them ours: 160 events at 8 a page are 20 pages.
    events = make_events(160, dt.datetime.now(UTC) - dt.timedelta(hours=1), STEP, personal_every=1)
    server = okta_server(events, rate_limit=12, rate_window_seconds=3)
    lake, log = tmp_path / "lake", tmp_path / "tail.log"
    run = start_stream("--source=okta", f"--okta_org_url={server.url}", f"--state={tmp_path / 'cursor.json'}",
                       f"--output={lake}", "--lookback=1d", "--okta_page_limit=8", "--okta_rate_share=0.5",
                       log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        wait_for_lake(lake, events, run, log, timeout=90)
    finally:
        stop(run)
    wall = time.time() - time.monotonic()  # the server's records are monotonic; its windows are wall-clock
    aligned = Counter(int((record.at + wall) // 3) for record in server.stats.records)
    assert server.stats.by_status.get(429, 0) == 0
    assert max(aligned.values()) <= 6, aligned  # never more than the share of a window
    # And the backlog drained near that share (the governor waits a second past each reset, a third of these
    # short windows), not at an idle tail's pace (auto: one poll per 11 s here).
    middle = [aligned[window] for window in range(min(aligned) + 1, max(aligned))]
    assert sum(middle) / len(middle) >= 3, aligned
    assert_lake_exact(lake, events)


@pytest.mark.parametrize("point", ["window-partition", "window-snapshot", "window-cursor"])
def test_a_tail_killed_at_any_point_of_a_commit_loses_and_duplicates_nothing(okta_server, tmp_path, point):
    # One partition of the lake committed / the lake but not the Iceberg table / both but not the cursor.
    events = make_events(60, dt.datetime.now(UTC) - dt.timedelta(hours=1), dt.timedelta(seconds=1))
    server = okta_server(events)
    lake, log, marker = tmp_path / "lake", tmp_path / "tail.log", tmp_path / "marker"
    args = ["--streaming", "--source=okta", f"--okta_org_url={server.url}", f"--state={tmp_path / 'cursor.json'}",
            f"--output={lake}", "--lookback=1d", "--okta_page_limit=20", "--iceberg_table=okta.events"]
    run = kill_points.start(point, marker, log, *args, env={"OKTA_API_TOKEN": TOKEN})
    try:
        kill_points.wait_for(marker, run, log)
    finally:
        kill_points.kill(run)
    again = start_stream(*args[1:], log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        more = make_events(10, dt.datetime.now(UTC) - dt.timedelta(seconds=2), STEP, salt=5)
        server.append(more)
        wait_for_lake(lake, events + more, again, log, timeout=90)
        wait_for_table(lake, events + more, again, log, timeout=60)
    finally:
        stop(again)
    assert_lake_exact(lake, events + more)
    assert lake_table_keys(lake) == expected_row_keys(events + more)
