"""Streaming runs as real processes: the Okta tail against the local server, Pub/Sub against Google's emulator.

Each test starts ``python -m pipeline --streaming ...``, feeds it while it runs, waits until the lake holds
what it must (or a deadline passes), stops the process, and checks the lake row by row.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from tests.support.helpers import dead_letters
from tests.support.okta import TOKEN, assert_lake_exact, expected_row_keys, lake_row_keys, make_events, wait_for_lake
from tests.support.stream import loop_settings, publish_events, start_stream, stop, tail_args

STEP = dt.timedelta(seconds=1)
UTC = dt.timezone.utc


# --- the Okta tail --------------------------------------------------------------------------------------------


def test_okta_tail_writes_appended_and_late_events_exactly_once(okta_server, tmp_path):
    now = dt.datetime.now(UTC)
    history = make_events(400, now - dt.timedelta(hours=5), STEP)
    server = okta_server(history)
    lake, state, log = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "tail.log"
    run = start_stream(*tail_args(server, lake, state), log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        appended = []
        for batch in range(6):
            fresh = make_events(20, dt.datetime.now(UTC) - dt.timedelta(seconds=2), dt.timedelta(milliseconds=10),
                                salt=10 + batch)
            # Published yesterday (another event_date), persisted only now: Okta's late events.
            late = make_events(4, now - dt.timedelta(days=1, hours=batch), STEP, personal_every=1, salt=20 + batch)
            server.append(fresh + late)
            appended += fresh + late
            time.sleep(1.5)
        wait_for_lake(lake, history + appended, run, log)
    finally:
        stop(run)
    assert_lake_exact(lake, history + appended)
    yesterday = (now - dt.timedelta(days=1)).date().isoformat()
    assert any(f"event_date={yesterday}" in str(p) for p in lake.glob("*/*/*.parquet"))
    # Files are named after their window; the cursor was stored after a committed window.
    assert all(p.name.startswith("part-w") for p in lake.glob("*/*/*.parquet"))
    assert json.loads(state.read_text())["next_url"]
    assert "window " in log.read_text() and TOKEN not in log.read_text()
    # Polls are paced: about one request per poll interval when caught up, not a busy loop.
    polls = server.stats.requests
    assert polls < 200, polls


def test_okta_tail_refused_by_okta_ends_the_stream_as_fatal_exit_1(okta_server, tmp_path):
    """A 401 is not waited out like an outage: the stream ends at once with exit 1, so a supervisor that restarts
    on 75 leaves it stopped until someone fixes the token."""
    server = okta_server(make_events(20, dt.datetime.now(UTC) - dt.timedelta(hours=1), STEP))
    lake, state, log = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "tail.log"
    run = start_stream(*tail_args(server, lake, state), "--stop_after=120s", log=log,
                       env={"OKTA_API_TOKEN": "00-revoked-token"})
    try:
        code = run.wait(timeout=120)
    finally:
        stop(run)
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert code == 1, log.read_text()
    assert len(errors) == 1 and errors[0].startswith("error: the streaming run failed") and "HTTP 401" in errors[0]
    assert errors[0].endswith("(fatal: fix the cause before rerunning)")
    assert "00-revoked-token" not in log.read_text()


def test_okta_tail_restart_resumes_from_the_cursor_without_loss(okta_server, tmp_path):
    now = dt.datetime.now(UTC)
    first = make_events(300, now - dt.timedelta(hours=3), STEP)
    server = okta_server(first)
    lake, state, log = tmp_path / "lake", tmp_path / "cursor.json", tmp_path / "tail.log"
    run = start_stream(*tail_args(server, lake, state), log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        wait_for_lake(lake, first, run, log)
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        more = make_events(30, dt.datetime.now(UTC) - dt.timedelta(seconds=1), dt.timedelta(milliseconds=10),
                           salt=3)
        server.append(more)
        time.sleep(1.2)  # killed mid-stream: some of `more` may be read but not committed
    finally:
        stop(run)
    cursor_before = json.loads(state.read_text())["next_url"]
    later = make_events(30, dt.datetime.now(UTC) - dt.timedelta(seconds=1), dt.timedelta(milliseconds=10), salt=4)
    server.append(later)
    rerun = start_stream(*tail_args(server, lake, state), log=log, env={"OKTA_API_TOKEN": TOKEN})
    try:
        wait_for_lake(lake, first + more + later, rerun, log)
    finally:
        stop(rerun)
    assert_lake_exact(lake, first + more + later)
    assert json.loads(state.read_text())["next_url"] != cursor_before


# --- Pub/Sub ------------------------------------------------------------------------------------------------------


def envelope_messages(events: list[dict]) -> list[tuple[bytes, dict]]:
    """The events as Pub/Sub messages in all four forms, with duplicates and bad messages mixed in."""
    messages = []
    for i, event in enumerate(events):
        form = i % 4
        if form == 0:
            data = json.dumps(event)
        elif form == 1:
            data = json.dumps([event])
        elif form == 2:
            data = json.dumps({"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0",
                               "data": {"events": [event]}})
        else:
            data = json.dumps({"version": "0", "detail-type": "SystemLog", "source": "aws.partner/okta.com",
                               "detail": event})
        messages.append((data.encode(), {"form": str(form), "n": str(i)}))
        if i % 10 == 0:  # at-least-once: the same event again, in another form
            messages.append((json.dumps(event).encode(), {"form": "again", "n": str(i)}))
    bad = [(b"{not json", {"kind": "broken"}), (b"\xff\xfe\x00binary", {"kind": "binary"}),
           (json.dumps({"uuid": "x"}).encode(), {"kind": "not-an-event"}),
           (json.dumps({"data": {"events": "nope"}}).encode(), {"kind": "bad-hook"})]
    return messages + bad


@pytest.mark.parametrize("reader", ["client", "beam"])
def test_pubsub_stream_lands_every_form_once_and_bad_messages_in_dead_letters(pubsub_emulator, tmp_path, reader):
    """``client`` is the local loop (sources/pubsub_loop.py); ``beam`` is the ReadFromPubSub graph Dataflow runs."""
    publisher, subscription = pubsub_emulator.topic_and_subscription(f"okta-stream-{reader}")
    now = dt.datetime.now(UTC)
    events = make_events(240, now - dt.timedelta(hours=30), dt.timedelta(minutes=7))  # spans two event dates
    messages = envelope_messages(events)
    for data, attributes in messages:
        publisher(data, attributes)
    lake, log = tmp_path / "lake", tmp_path / "pubsub.log"
    run = start_stream("--source=pubsub", f"--subscription={subscription}", f"--output={lake}", "--window=5s",
                       f"--pubsub_reader={reader}",
                       log=log, env=pubsub_emulator.env)
    try:
        wait_for_lake(lake, events, run, log, timeout=180)
        deadline = time.monotonic() + 90
        while len(dead_letters(lake)) < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        # The progress line comes from a second GroupByKey after the commits, so it can trail the lake by a
        # watermark step: wait for it rather than race it.
        while "window " not in log.read_text() and time.monotonic() < deadline + 30:
            time.sleep(0.5)
    finally:
        stop(run)
    assert_lake_exact(lake, events)
    dead = dead_letters(lake)
    assert sorted(d["attributes"]["kind"] for d in dead) == ["bad-hook", "binary", "broken", "not-an-event"]
    for record in dead:
        assert record["message_id"] and record["error"] and record["origin"] == subscription
    assert all(p.name.startswith("part-w") for p in lake.glob("*/*/*.parquet"))
    assert "window " in log.read_text()


def test_pubsub_loop_acknowledges_only_committed_windows(pubsub_emulator, tmp_path, monkeypatch):
    """Pulled but uncommitted messages come back to the next reader; committed ones are acknowledged."""
    from streaming import pubsub_loop
    from streaming.pubsub_loop import PubSubTail

    monkeypatch.setattr(pubsub_loop, "LEASE_SECONDS", 10)
    subscription, events = publish_events(pubsub_emulator, "okta-lease", 60)
    lake = tmp_path / "lake"

    def settings(window: float):
        return loop_settings(subscription, lake, window)

    crashed = PubSubTail(settings(3600))  # a window that never ends in this test: nothing is committed
    pulled, deadline = 0, time.monotonic() + 60
    while pulled < len(events) and time.monotonic() < deadline:
        pulled += crashed.tick()
    assert pulled == len(events)
    assert not lake_row_keys(lake)
    del crashed  # a crash: no commit, no acknowledgement

    survivor = PubSubTail(settings(2))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and set(lake_row_keys(lake)) != set(expected_row_keys(events)):
        survivor.tick()  # the lake is complete only after a commit, and a commit is acknowledged at once
    assert_lake_exact(lake, events)
    time.sleep(pubsub_loop.LEASE_SECONDS + 2)  # an unacknowledged message would be delivered again by now
    assert PubSubTail(settings(3600)).tick() == 0


def test_pubsub_loop_killed_mid_window_loses_nothing(pubsub_emulator, tmp_path):
    publisher, subscription = pubsub_emulator.topic_and_subscription("okta-kill")
    now = dt.datetime.now(UTC)
    first = make_events(120, now - dt.timedelta(hours=3), STEP)
    more = make_events(120, now - dt.timedelta(hours=1), STEP, salt=7)
    lake, log = tmp_path / "lake", tmp_path / "pubsub.log"
    args = ("--source=pubsub", f"--subscription={subscription}", f"--output={lake}")
    for data, attributes in envelope_messages(first):
        publisher(data, attributes)
    run = start_stream(*args, "--window=3s", log=log, env=pubsub_emulator.env)
    try:
        wait_for_lake(lake, first, run, log)
    finally:
        stop(run)
    # Killed while holding a window it can never commit: with Beam's local reader these would be lost (acked on pull).
    run = start_stream(*args, "--window=1h", log=log, env=pubsub_emulator.env)
    hour = time.time() // 3600
    try:
        for data, attributes in envelope_messages(more):
            publisher(data, attributes)
        time.sleep(8)
        assert run.poll() is None, log.read_text()[-3000:]
    finally:
        stop(run)
    if time.time() // 3600 == hour:  # (an hour boundary inside those seconds would commit a window)
        assert set(lake_row_keys(lake)) == set(expected_row_keys(first))
    rerun = start_stream(*args, "--window=3s", log=log, env=pubsub_emulator.env)
    try:
        wait_for_lake(lake, first + more, rerun, log, timeout=150)
    finally:
        stop(rerun)
    assert_lake_exact(lake, first + more)


def test_pubsub_loop_keeps_renewing_the_lease_of_a_long_window(pubsub_emulator, tmp_path, monkeypatch):
    """Messages held longer than one lease are not delivered to anyone else, then committed once."""
    from google.cloud import pubsub_v1

    from streaming import pubsub_loop
    from streaming.pubsub_loop import PubSubTail

    monkeypatch.setattr(pubsub_loop, "LEASE_SECONDS", 10)
    monkeypatch.setattr(pubsub_loop, "RENEW_BEFORE", 6)
    monkeypatch.setattr(pubsub_loop, "LONGEST_PULL", 1.0)
    subscription, events = publish_events(pubsub_emulator, "okta-renew", 40)
    lake = tmp_path / "lake"
    settings = loop_settings(subscription, lake, 30)
    left = settings.window.length - time.time() % settings.window.length
    if left < 24:  # start early in a window, so the messages are held for more than two leases
        time.sleep(left + 0.1)
    tail = PubSubTail(settings)
    pulled, deadline = 0, time.monotonic() + 30
    while pulled < len(events) and time.monotonic() < deadline:
        pulled += tail.tick()
    assert pulled == len(events)
    held_since, window_end = time.monotonic(), (time.time() // settings.window.length + 1) * settings.window.length
    other = pubsub_v1.SubscriberClient()
    stolen = 0
    deadline = time.monotonic() + 60
    while time.time() < window_end and time.monotonic() < deadline:  # held past two leases
        tail.tick()
        try:
            stolen += len(other.pull(request={"subscription": subscription, "max_messages": 100},
                                     timeout=1, retry=None).received_messages)
        except Exception:  # noqa: BLE001 - DeadlineExceeded: nothing to deliver, as it should be
            pass
    assert time.monotonic() - held_since > 2 * pubsub_loop.LEASE_SECONDS - 2
    assert stolen == 0
    while not lake_row_keys(lake) and time.monotonic() < deadline + 30:
        tail.tick()
    assert_lake_exact(lake, events)


def test_pubsub_loop_commits_a_backlog_in_pieces_before_the_window_ends(pubsub_emulator, tmp_path, monkeypatch):
    """A window that cannot hold the backlog commits (and acknowledges) it in pieces; the rest comes back later."""
    from streaming import pubsub_loop, window_buffer
    from streaming.pubsub_loop import PubSubTail

    monkeypatch.setattr(window_buffer, "MAX_BUFFERED_ROWS", 25)
    monkeypatch.setattr(pubsub_loop, "LEASE_SECONDS", 10)
    monkeypatch.setattr(pubsub_loop, "MAX_MESSAGES", 20)
    subscription, events = publish_events(pubsub_emulator, "okta-backlog", 120)
    lake = tmp_path / "lake"

    def settings(window: float):
        return loop_settings(subscription, lake, window)

    tail = PubSubTail(settings(3600))
    hour = time.time() // 3600
    pulled, deadline = 0, time.monotonic() + 60
    while pulled < len(events) and time.monotonic() < deadline:
        pulled += tail.tick()
    assert pulled == len(events)
    early = lake_row_keys(lake)
    if time.time() // 3600 == hour:  # (unless the hour turned meanwhile) pieces were committed while it was open
        assert len(early) >= 25 and set(early) < set(expected_row_keys(events))
    tail.close()  # stopped with the last piece uncommitted: only that piece comes back
    survivor = PubSubTail(settings(2))
    deadline = time.monotonic() + 60
    while set(lake_row_keys(lake)) != set(expected_row_keys(events)) and time.monotonic() < deadline:
        survivor.tick()
    assert_lake_exact(lake, events)
