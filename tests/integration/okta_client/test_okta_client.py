"""The System Log client against the local server over real HTTP: paging, polling, limits, faults, auth."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from okta_client import OAuthPrivateKeyJwtAuth, SswsAuth, SystemLogClient
from okta_client.errors import ConfigurationError, IncompleteBody, OktaApiError, QueryTimeout, ResponseTooLarge
from tests.support.hostile import corpus, page
from tests.support.okta import TOKEN, iso, make_events, recent_start

LOGS = "/api/v1/logs"
STEP = dt.timedelta(seconds=1)


def client_for(server, **kwargs) -> SystemLogClient:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("backoff_cap", 0.05)
    return SystemLogClient(server.url, kwargs.pop("auth", None) or SswsAuth(TOKEN), **kwargs)


def log_requests(server) -> int:
    return server.stats.requests


def test_bounded_read_follows_next_links_to_the_last_page(okta_server):
    start = recent_start()
    events = make_events(2500, start, STEP)
    server = okta_server(events)
    client = client_for(server)
    pages = list(client.bounded_pages(iso(start), iso(start + 2500 * STEP)))
    assert [len(p) for p in pages] == [1000, 1000, 500]
    assert pages[-1].next_url is None and all(p.next_url for p in pages[:-1])
    assert [e["uuid"] for p in pages for e in p.events] == [e["uuid"] for e in events]
    assert log_requests(server) == 3  # no extra request after the last page
    assert all("after=" not in p.url for p in pages[:1]) and all("after=" in p.url for p in pages[1:])


def test_adjacent_half_open_ranges_read_a_boundary_event_once(okta_server):
    start = recent_start()
    events = make_events(30, start, STEP)  # event 10 is published exactly at the boundary
    server = okta_server(events)
    client = client_for(server)
    boundary = start + 10 * STEP
    first = [e["uuid"] for p in client.bounded_pages(iso(start), iso(boundary)) for e in p.events]
    second = [e["uuid"] for p in client.bounded_pages(iso(boundary), iso(start + 30 * STEP)) for e in p.events]
    assert events[10]["uuid"] in second and events[10]["uuid"] not in first
    assert sorted(first + second) == sorted(e["uuid"] for e in events)


def test_filter_pushdown_reaches_the_server(okta_server):
    start = recent_start()
    events = make_events(100, start, STEP, personal_every=4)
    server = okta_server(events)
    got = [e for p in client_for(server).bounded_pages(iso(start), iso(start + 100 * STEP),
                                                        filter='eventType sw "personal."') for e in p.events]
    assert len(got) == 25 and all(e["eventType"].startswith("personal.") for e in got)


def test_polling_chain_ends_at_the_first_short_page_and_resumes_from_its_next_link(okta_server):
    start = recent_start()
    events = make_events(1500, start, STEP)
    server = okta_server(events)
    client = client_for(server)
    pages = list(client.polling_pages(client.first_url(since=iso(start))))
    # A short page (fewer than the limit asked) is caught up: no request for the empty page after it.
    assert [len(p) for p in pages] == [1000, 500]
    assert log_requests(server) == 2
    cursor = pages[-1].next_url
    assert cursor and "after=" in cursor

    # Caught up: polling again costs exactly one request, no busy loop.
    again = list(client.polling_pages(cursor))
    assert [len(p) for p in again] == [0] and log_requests(server) == 3

    # No limit in the URL: Okta's default page of 100 is the full one.
    default = list(client.polling_pages(client.first_url(since=iso(start)).replace("&limit=1000", "")))
    assert [len(p) for p in default][:2] == [100, 100] and len(default) == 16 and len(default[-1]) == 0

    # New events, one of them published long ago but persisted now (late): the cursor finds both.
    late = make_events(1, start - dt.timedelta(hours=1), STEP, salt=9)[0]
    fresh = make_events(3, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5), STEP, salt=8)
    server.append([late, *fresh])
    resumed = list(client.polling_pages(again[-1].next_url))
    assert sorted(e["uuid"] for p in resumed for e in p.events) == sorted(e["uuid"] for e in [late, *fresh])


def test_a_429_waits_for_the_reset_instead_of_hammering(okta_server):
    start = recent_start()
    events = make_events(6000, start, STEP)
    server = okta_server(events, rate_limit=3, rate_window_seconds=4)
    # Another integration spends the window's whole budget behind our back.
    while True:
        spent = requests.get(server.url + LOGS, headers={"Authorization": f"SSWS {TOKEN}"}, timeout=5)
        if spent.status_code == 429:
            break
    reset_in = int(spent.headers["X-Rate-Limit-Reset"]) - time.time()
    before = server.stats.requests
    ours = client_for(server)
    started = time.monotonic()
    got = [e["uuid"] for p in ours.bounded_pages(iso(start), iso(start + 6000 * STEP)) for e in p.events]
    elapsed = time.monotonic() - started
    assert got == [e["uuid"] for e in events]
    statuses = [r.status for r in server.stats.records[before:]]
    # One 429 (the probe into the spent window), then the wait until Reset, then no more 429s:
    # six pages at three per window. A client that slept a fixed second would have collected several.
    assert statuses.count(429) == ours.stats.throttled == 1, statuses
    assert statuses.count(200) == 6
    assert elapsed >= reset_in + 4  # waited for the spent window, and for the next one after three pages


def test_the_share_keeps_part_of_every_window_for_other_integrations(okta_server):
    start = recent_start()
    events = make_events(8000, start, STEP)
    server = okta_server(events, rate_limit=4, rate_window_seconds=2)
    client = client_for(server, rate_share=0.5)
    started = time.monotonic()
    pages = list(client.bounded_pages(iso(start), iso(start + 8000 * STEP)))
    elapsed = time.monotonic() - started
    assert len(pages) == 8
    assert 429 not in [r.status for r in server.stats.records]
    # Half of 4 calls per 2 s window: 8 pages span at least 4 windows, so well over 4 s (at full share: ~2 s).
    assert elapsed > 4.0


def test_network_faults_and_5xx_are_retried_until_every_event_is_read(okta_server):
    start = recent_start()
    events = make_events(5000, start, STEP)
    server = okta_server(events, fault_seed=3, fault_5xx=0.25, fault_reset=0.15, fault_truncate=0.15)
    client = client_for(server, timeout=(2, 5))
    got = [e["uuid"] for p in client.bounded_pages(iso(start), iso(start + 5000 * STEP), limit=500)
           for e in p.events]
    assert got == [e["uuid"] for e in events]
    assert client.stats.retries >= 3


def test_query_timeout_on_a_bounded_read_is_raised_for_the_caller_to_split(okta_server):
    start = recent_start()
    server = okta_server(make_events(1200, start, STEP), timeout_events=1000)
    with pytest.raises(QueryTimeout) as caught:
        list(client_for(server).bounded_pages(iso(start), iso(start + 1200 * STEP)))
    assert caught.value.code == "E0000009"


def test_a_4xx_is_a_final_error_naming_the_request_without_the_token(okta_server, caplog):
    start = recent_start()
    server = okta_server(make_events(10, start, STEP))
    caplog.set_level(logging.DEBUG)
    wrong = "00-wrong-token-value-Zm9vYmFy"
    with pytest.raises(OktaApiError) as caught:
        list(client_for(server, auth=SswsAuth(wrong)).bounded_pages(iso(start), iso(start + 10 * STEP)))
    message = str(caught.value)
    assert "401" in message and LOGS in message and "E0000011" in message
    assert wrong not in message and wrong not in caplog.text
    assert log_requests(server) == 2  # one retry after dropping cached credentials, then a final error

    with pytest.raises(OktaApiError) as bad_filter:
        list(client_for(server).bounded_pages(iso(start), iso(start + 10 * STEP), filter='eventType zz "x"'))
    assert "400" in str(bad_filter.value) and "E0000031" in str(bad_filter.value)


def test_responses_over_the_size_limit_are_refused(okta_server):
    start = recent_start()
    server = okta_server(make_events(1000, start, STEP))
    with pytest.raises(ResponseTooLarge, match="byte limit"):
        list(client_for(server, max_response_bytes=100_000).bounded_pages(iso(start), iso(start + 1000 * STEP)))


@pytest.fixture
def service_key(rsa_private_key):
    key = rsa_private_key
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


@pytest.mark.parametrize("dpop", [False, True], ids=["bearer", "dpop"])
def test_oauth_private_key_jwt_against_the_local_token_endpoint(okta_server, service_key, dpop, caplog):
    private_pem, public_pem = service_key
    start = recent_start()
    events = make_events(2100, start, STEP)
    server = okta_server(events, token=None, oauth_client_id="0oaServiceApp", oauth_public_key=public_pem,
                         require_dpop=dpop)
    caplog.set_level(logging.DEBUG)
    auth = OAuthPrivateKeyJwtAuth(server.url, "0oaServiceApp", private_pem, dpop=dpop)
    client = client_for(server, auth=auth)
    got = [e["uuid"] for p in client.bounded_pages(iso(start), iso(start + 2100 * STEP)) for e in p.events]
    assert got == [e["uuid"] for e in events]
    stats = server.stats
    assert {r.auth_scheme for r in stats.records} == {"DPoP" if dpop else "Bearer"}
    # One token for three pages (cached); with DPoP the first token request is answered use_dpop_nonce.
    assert stats.token_requests == (2 if dpop else 1)
    assert "PRIVATE KEY" not in caplog.text and repr(auth).count("BEGIN") == 0


def test_oauth_with_a_key_the_server_does_not_know_is_a_clear_error(okta_server, service_key):
    _, public_pem = service_key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    server = okta_server(make_events(5, recent_start(), STEP), token=None, oauth_client_id="0oaServiceApp",
                         oauth_public_key=public_pem)
    auth = OAuthPrivateKeyJwtAuth(server.url, "0oaServiceApp", other)
    with pytest.raises((OktaApiError, ConfigurationError)) as caught:
        client_for(server, auth=auth).get_page(server.url + LOGS, bounded=True)
    assert "token" in str(caught.value).lower() and "PRIVATE KEY" not in str(caught.value)


def test_requests_and_retries_are_reported_as_each_attempt_happens(okta_server):
    """During an outage the client reports every request and retry at once (a dashboard sees the outage while it
    lasts), not when a page finally arrives."""
    import threading

    start = recent_start()
    server = okta_server(make_events(5, start, STEP))
    seen, during = [], []
    client = client_for(server, on_event=seen.append, backoff_base=0.05, backoff_cap=0.1, max_retries=50)
    server.outage(503)
    done = threading.Event()

    def end_outage():  # once the client has retried a few times, from outside, as a real outage ends
        while seen.count("retry") < 3 and not done.is_set():
            time.sleep(0.01)
        during.extend(seen)  # what was reported while every answer was a 503
        server.outage(None)

    threading.Thread(target=end_outage, daemon=True).start()
    try:
        [page] = list(client.bounded_pages(iso(start), iso(start + 5 * STEP)))
    finally:
        done.set()
    assert len(page) == 5
    assert during.count("request") >= 3 and during.count("retry") >= 3 and "page" not in during
    assert seen.count("request") == server.stats.requests == client.stats.requests
    assert seen.count("retry") == client.stats.retries == seen.count("request") - 1
    assert seen[-1] == "page" and seen.count("page") == client.stats.pages == 1


@pytest.mark.parametrize("wait", ["rate limit", "backoff"])
def test_a_stop_request_ends_the_clients_wait(okta_server, wait):
    """A stop request (``--stop_after``, a shutdown) ends a rate-limit wait or a retry backoff at once."""
    import threading

    from okta_client.errors import Stopped

    start = recent_start()
    events = make_events(3, start, STEP)
    stop = threading.Event()
    if wait == "rate limit":  # one request a minute: the second one waits for the next window
        server = okta_server(events, rate_limit=1, rate_window_seconds=600)
        client = client_for(server, stop=stop)
        client.get_page(client.first_url(since=iso(start), until=iso(start + 3 * STEP)), bounded=True)
    else:  # Okta down: the client backs off for up to 10 minutes between attempts
        server = okta_server(events)
        server.outage(503)
        client = client_for(server, stop=stop, backoff_base=600, backoff_cap=600, max_retries=5)
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(Stopped):
        client.get_page(client.first_url(since=iso(start), until=iso(start + 3 * STEP)), bounded=True)
    assert server.stats.requests <= 2


def test_a_whole_page_holding_events_orjson_refuses_is_a_page_read_once(okta_server):
    """Asking again would get the same bytes: the page is handed on whole (its events are judged downstream)."""
    start = recent_start()
    entries = corpus(start)
    server = okta_server([entry.line for entry in entries])
    pages = list(client_for(server).bounded_pages(iso(start), iso(start + len(entries) * STEP)))
    assert len(pages) == 1 and log_requests(server) == 1
    assert pages[0].body == page(entries)  # served as stored, byte for byte
    assert [event.get("uuid") for event in pages[0].events] == [entry.uuid for entry in entries]
    assert pages[0].events[-1]["published"] == iso(start + (len(entries) - 1) * STEP)


@pytest.fixture
def cutting_server():
    """A server whose every answer is a 200 whose body is cut short (no Content-Length: the cut is unseen)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        requests = 0

        def do_GET(self):  # noqa: N802 - the stdlib's name
            Handler.requests += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'[{"uuid":"a","published":"2026-01-01T00:00:00.000Z"},{"uuid":"b","publ')
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.url, server.handler = f"http://127.0.0.1:{server.server_address[1]}", Handler
    yield server
    server.shutdown()
    server.server_close()


def test_a_body_cut_short_is_asked_again_then_a_retryable_error_that_says_http_200(cutting_server):
    client = client_for(cutting_server, max_retries=2)
    with pytest.raises(IncompleteBody) as caught:
        client.get_page(client.first_url(since="2026-01-01T00:00:00Z"), bounded=False)
    message = str(caught.value)
    assert cutting_server.handler.requests == 3
    assert "-> HTTP 200: gave up after 3 attempts; last: a body that is not whole JSON" in message, message
    assert caught.value.retryable and IncompleteBody.retryable_from_message(message)
