"""The rate governor, on a fake clock: pacing, shares, resets and both kinds of 429."""

import threading

import pytest

from okta_client.ratelimit import RateGovernor


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def headers(limit, remaining, reset, date=None):
    h = {"X-Rate-Limit-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining),
         "X-Rate-Limit-Reset": str(reset)}
    if date:
        h["Date"] = date
    return h


def delay(governor):
    with governor._cond:
        return governor._delay(governor._clock())


def test_first_request_goes_at_once_then_one_probe_at_a_time():
    governor = RateGovernor(clock=Clock())
    assert delay(governor) == 0
    governor.acquire()
    assert delay(governor) > 0  # nothing known yet: wait for the probe's answer


def test_remaining_calls_are_spread_over_the_window():
    clock = Clock()
    governor = RateGovernor(clock=clock, jitter=0)
    governor.acquire()
    governor.release(200, headers(120, 119, int(clock.now) + 60))
    wait = delay(governor)
    # 61 s to the (margin-padded) reset, 119 calls left: about one every half second
    assert 0.4 < wait < 0.6


def test_share_keeps_the_rest_of_the_window_for_others():
    clock = Clock()
    governor = RateGovernor(share=0.5, clock=clock, jitter=0, pace=False)
    governor.acquire()
    governor.release(200, headers(100, 51, int(clock.now) + 60))
    assert delay(governor) == 0  # 51 left, 50 reserved: one more call is ours
    governor.acquire()
    assert delay(governor) == pytest.approx(61, abs=0.01)  # only the reserve is left: wait for the reset
    governor.release(200, headers(100, 50, int(clock.now) + 60))
    assert delay(governor) == pytest.approx(61, abs=0.01)


def test_a_429_waits_for_the_reset_in_server_time():
    clock = Clock()
    governor = RateGovernor(clock=clock, jitter=0)
    governor.acquire()
    # The server's clock is 10 s ahead of ours; its window resets 5 s from its now.
    server_now = clock.now + 10
    date = __import__("email.utils").utils.formatdate(server_now, usegmt=True)
    governor.release(429, headers(20, 0, int(server_now) + 5, date))
    assert governor.stats.throttled == 1
    assert delay(governor) == pytest.approx(5 + RateGovernor.RESET_MARGIN, abs=1.01)


def test_after_the_reset_a_single_probe_learns_the_new_window():
    clock = Clock()
    governor = RateGovernor(clock=clock, jitter=0)
    governor.acquire()
    governor.release(200, headers(10, 0, int(clock.now) + 3))
    assert delay(governor) > 3
    clock.now += 5
    assert delay(governor) == 0
    governor.acquire()
    assert delay(governor) > 0  # the probe is in flight


def test_concurrency_limit_429_backs_off_briefly_and_grows():
    clock = Clock()
    governor = RateGovernor(clock=clock)
    waits = []
    for _ in range(3):
        governor.acquire()
        governor.release(429, headers(0, 0, int(clock.now) + 60))
        waits.append(delay(governor))
        clock.now += waits[-1]
    assert governor.stats.concurrency_throttled == 3
    assert all(0 < w <= 10 for w in waits)
    assert waits[-1] > waits[0] / 2


def test_threads_never_exceed_the_remaining_budget():
    """Ten threads against a window of 5 calls: exactly 5 go, the rest wait for the reset."""
    clock = Clock()
    governor = RateGovernor(clock=clock, jitter=0, pace=False)
    governor.acquire()
    governor.release(200, headers(6, 5, int(clock.now) + 60))
    sent = []

    def call():
        governor.acquire()
        sent.append(1)
        governor.release(200, None)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=0.5)
    # The clock does not move: the five calls left in this window go, the rest wait for the reset.
    assert len(sent) == 5
    clock.now += 70
    with governor._cond:
        governor._cond.notify_all()
    for t in threads:
        t.join(timeout=2)
    assert len(sent) >= 6  # a probe of the new window went out


def test_bad_share_is_refused():
    with pytest.raises(ValueError):
        RateGovernor(share=0)
