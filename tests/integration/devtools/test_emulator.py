"""The Okta System Log emulator, over real HTTP: paging, filters, limits, auth, faults, and the official SDK."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from dataclasses import fields
from urllib.parse import parse_qs, parse_qsl, urlsplit

import jwt
import orjson
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from devtools.system_log_server import EmulatorConfig, SystemLogServer
from devtools.system_log_server.__main__ import build_parser
from devtools.system_log_server.dataset import event_generator, generated_records
from devtools.system_log_server.scim import FilterError, parse_filter
from devtools.system_log_server.timestamps import DAY_US, format_us, now_us
from tests.support.helpers import REPO, write_jsonl

LOGS = "/api/v1/logs"
TOKEN_PATH = "/oauth2/v1/token"
CLIENT_ID = "0oaEmulatorTest"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SECOND_US = 1_000_000


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def start():
    """start(**config) -> a running SystemLogServer on a free port, stopped at teardown."""
    servers = []

    def _start(**config) -> SystemLogServer:
        server = SystemLogServer(EmulatorConfig(**config)).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


def base_time() -> int:
    """Now, rounded down to a millisecond (Okta's published precision)."""
    return now_us() // 1000 * 1000


def event(published_us: int, event_type: str = "user.session.start", **fields) -> dict:
    return {"uuid": str(uuidlib.uuid4()), "published": format_us(published_us), "eventType": event_type,
            "version": "0", "severity": "INFO", **fields}


def logs(server: SystemLogServer, headers: dict | None = None, **params) -> requests.Response:
    return requests.get(server.url + LOGS, params=params, headers=headers, timeout=10)


def follow(response: requests.Response, headers: dict | None = None, max_pages: int = 100) -> list:
    """Every page of a bounded chain (list of responses), following next links to the end."""
    pages = [response]
    while "next" in pages[-1].links:
        assert pages[-1].status_code == 200, pages[-1].text
        pages.append(requests.get(pages[-1].links["next"]["url"], headers=headers, timeout=10))
        assert len(pages) <= max_pages, "the chain does not end"
    return pages


def uuids(pages: list) -> list[str]:
    return [e["uuid"] for page in pages for e in page.json()]


def assert_okta_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["errorCode"] == code and body["errorLink"] == code
    assert body["errorId"].startswith("oae") and isinstance(body["errorCauses"], list) and body["errorSummary"]
    return body


def pem_public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def rsa_key(rsa_private_key):
    return rsa_private_key


def assertion(server: SystemLogServer, key, algorithm: str = "RS256", **overrides) -> str:
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": server.url + TOKEN_PATH, "iat": now, "exp": now + 300,
              "jti": str(uuidlib.uuid4()), **overrides}
    return jwt.encode(claims, key, algorithm=algorithm)


def token_request(server: SystemLogServer, client_assertion: str, scope: str = "okta.logs.read",
                  dpop: str | None = None, grant_type: str = "client_credentials") -> requests.Response:
    form = {"grant_type": grant_type, "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion}
    return requests.post(server.url + TOKEN_PATH, data=form, headers={"DPoP": dpop} if dpop else {}, timeout=10)


def dpop_proof(key, method: str, url: str, nonce: str | None = None, access_token: str | None = None,
               **overrides) -> str:
    claims = {"jti": str(uuidlib.uuid4()), "htm": method, "htu": url, "iat": int(time.time()), **overrides}
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()
    public_jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public_jwk})


# --- bounded requests ----------------------------------------------------------------------------------------


def test_bounded_pages_give_every_event_once_in_published_order(start):
    server = start(generate=2345, days=1)
    now = base_time()
    first = logs(server, since=format_us(now - 2 * DAY_US), until=format_us(now + 60 * SECOND_US), limit=1000)
    pages = follow(first)
    assert [len(page.json()) for page in pages] == [1000, 1000, 345]
    ids = uuids(pages)
    assert len(ids) == len(set(ids)) == 2345
    published = [e["published"] for page in pages for e in page.json()]
    assert published == sorted(published)
    for page in pages:
        assert page.headers["Content-Type"] == "application/json"
        assert page.links["self"]["url"].startswith(server.url + LOGS + "?")
        assert {"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset", "Date"} <= set(page.headers)
    assert "next" not in pages[-1].links
    assert server.stats.requests == 3 and server.stats.by_status == {200: 3}


def test_a_page_of_exactly_the_remaining_events_is_the_last(start):
    server = start()
    now = base_time()
    server.append([event(now - i * SECOND_US) for i in range(1, 5)])
    pages = follow(logs(server, since=format_us(now - 60 * SECOND_US), until=format_us(now), limit=2))
    assert [len(page.json()) for page in pages] == [2, 2]


def test_descending_order_and_descending_without_until(start):
    server = start(generate=250, days=1)
    now = base_time()
    pages = follow(logs(server, since=format_us(now - 2 * DAY_US), until=format_us(now + SECOND_US), limit=100,
                        sortOrder="DESCENDING"))
    published = [e["published"] for page in pages for e in page.json()]
    assert len(published) == 250 and published == sorted(published, reverse=True)
    without_until = follow(logs(server, since=format_us(now - 2 * DAY_US), limit=100, sortOrder="DESCENDING"))
    assert uuids(without_until) == uuids(pages)
    assert "next" not in without_until[-1].links


def test_since_is_inclusive_and_until_exclusive(start):
    server = start()
    t0 = base_time() - 60 * SECOND_US
    at_since, inside, at_until = event(t0), event(t0 + 500_000), event(t0 + SECOND_US)
    server.append([at_until, inside, at_since])
    page = logs(server, since=format_us(t0), until=format_us(t0 + SECOND_US))
    assert [e["uuid"] for e in page.json()] == [at_since["uuid"], inside["uuid"]]
    assert "next" not in page.links


def test_same_published_time_keeps_a_stable_order_across_pages(start):
    server = start()
    t0 = base_time() - 60 * SECOND_US
    batch = [event(t0) for _ in range(7)]
    server.append(batch)
    pages = follow(logs(server, since=format_us(t0), until=format_us(t0 + 1000), limit=3))
    assert uuids(pages) == [e["uuid"] for e in batch]


def test_limit_defaults_to_100_and_clamps_to_1000(start):
    server = start(generate=1500, days=1)
    since = format_us(base_time() - 2 * DAY_US)
    assert len(logs(server, since=since).json()) == 100
    assert len(logs(server, since=since, limit=5000).json()) == 1000
    empty = logs(server, since=since, until=format_us(base_time()), limit=0)
    assert empty.json() == [] and "next" in empty.links


@pytest.mark.parametrize("params", [
    {"limit": "-1"}, {"limit": "abc"}, {"limit": "1.5"},
    {"since": "yesterday"}, {"until": "2026-11-25 10:00:00Z"}, {"since": "2026-02-30T00:00:00Z"},
    {"sortOrder": "SIDEWAYS"}, {"after": "not-a-cursor"}, {"q": "x" * 41},
])
def test_bad_parameters_are_400_E0000001(start, params):
    assert_okta_error(logs(start(), **params), 400, "E0000001")


def test_forged_or_mismatched_cursors_are_refused(start):
    server = start()
    server.append([event(base_time() - i * SECOND_US) for i in range(1, 4)])
    page = logs(server, since=format_us(base_time() - DAY_US), until=format_us(base_time()), limit=1)
    after = parse_qs(urlsplit(page.links["next"]["url"]).query)["after"][0]
    mac = after.split(".")[1]
    forged = base64.urlsafe_b64encode(orjson.dumps({"m": "asc", "t": 0, "s": 0})).rstrip(b"=").decode()
    assert_okta_error(logs(server, after=f"{forged}.{mac}"), 400, "E0000001")
    # A bounded cursor does not fit a polling request.
    assert_okta_error(logs(server, after=after), 400, "E0000001")


def test_next_links_keep_the_query_and_replace_after(start):
    server = start()
    now = base_time()
    server.append([event(now - i * SECOND_US, actor={"alternateId": "ada@example.com"}) for i in range(1, 6)])
    params = {"since": format_us(now - 60 * SECOND_US), "until": format_us(now), "limit": "2",
              "filter": 'eventType eq "user.session.start"', "q": "ada@example.com", "sortOrder": "ASCENDING"}
    first = logs(server, **params)
    second = requests.get(first.links["next"]["url"], timeout=10)
    for page in (first, second):
        url = page.links["next"]["url"]
        assert url.startswith(server.url + LOGS + "?")
        query = dict(parse_qsl(urlsplit(url).query))
        assert {k: query[k] for k in params} == params
        assert url.count("after=") == 1
    assert len(uuids(follow(first))) == 5


def test_since_more_than_180_days_back_is_E0000053(start):
    response = logs(start(), since=format_us(base_time() - 181 * DAY_US))
    body = assert_okta_error(response, 400, "E0000053")
    assert "180 days" in body["errorSummary"]


def test_events_published_more_than_90_days_ago_are_never_returned(start):
    server = start()
    now = base_time()
    too_old, old_enough = event(now - 91 * DAY_US), event(now - 89 * DAY_US)
    server.append([too_old, old_enough])
    bounded = logs(server, since=format_us(now - 100 * DAY_US), until=format_us(now))
    assert [e["uuid"] for e in bounded.json()] == [old_enough["uuid"]]
    polling = logs(server, since=format_us(now - 100 * DAY_US))
    assert [e["uuid"] for e in polling.json()] == [old_enough["uuid"]]


def test_timeout_events_fails_big_first_bounded_requests_only(start):
    server = start(timeout_events=20)
    now = base_time()
    server.append([event(now - i * SECOND_US, "personal.user.app_migration.export" if i <= 10 else "user.x")
                   for i in range(1, 51)])
    since, until = format_us(now - 100 * SECOND_US), format_us(now)
    assert_okta_error(logs(server, since=since, until=until), 500, "E0000009")
    narrow = logs(server, since=format_us(now - 15 * SECOND_US), until=until, limit=5)
    assert narrow.status_code == 200 and len(uuids(follow(narrow))) == 15
    # The filter counts: only 10 events match over the whole range.
    filtered = logs(server, since=since, until=until, filter='eventType sw "personal."')
    assert filtered.status_code == 200 and len(filtered.json()) == 10
    assert logs(server, since=since).status_code == 200  # polling requests are not bounded queries


# --- polling requests ----------------------------------------------------------------------------------------


def test_polling_always_has_a_next_link_even_on_empty_pages(start):
    server = start()
    now = base_time()
    server.append([event(now - i * SECOND_US) for i in range(5, 0, -1)])
    page = logs(server, since=format_us(now - 60 * SECOND_US), limit=2)
    sizes = [len(page.json())]
    while sizes[-1]:
        page = requests.get(page.links["next"]["url"], timeout=10)
        sizes.append(len(page.json()))
    assert sizes == [2, 2, 1, 0]
    again = requests.get(page.links["next"]["url"], timeout=10)
    assert again.json() == [] and again.links["next"]["url"] == page.links["next"]["url"]
    fresh = event(base_time())
    server.append([fresh])
    assert [e["uuid"] for e in requests.get(again.links["next"]["url"], timeout=10).json()] == [fresh["uuid"]]


def test_polling_a_quiet_org_from_its_first_request(start):
    server = start()
    page = logs(server, since=format_us(base_time() - 60 * SECOND_US))
    assert page.json() == [] and "next" in page.links
    server.append([event(base_time())])
    assert len(requests.get(page.links["next"]["url"], timeout=10).json()) == 1


def test_late_persisted_event_appears_in_a_later_polling_page(start):
    server = start()
    now = base_time()
    on_time = event(now - SECOND_US)
    server.append([on_time])
    first = logs(server, since=format_us(now - 3600 * SECOND_US))
    assert [e["uuid"] for e in first.json()] == [on_time["uuid"]]
    # Published ten minutes ago but persisted only now: a bounded query over its minute could not see it before.
    late = event(now - 600 * SECOND_US)
    window = {"since": format_us(now - 601 * SECOND_US), "until": format_us(now - 599 * SECOND_US)}
    assert logs(server, **window).json() == []
    server.append([late])
    second = requests.get(first.links["next"]["url"], timeout=10)
    assert [e["uuid"] for e in second.json()] == [late["uuid"]]
    assert [e["uuid"] for e in logs(server, **window).json()] == [late["uuid"]]


def test_events_persisted_in_the_future_are_invisible_until_then(start):
    server = start()
    now = base_time()
    pending = event(now - 60 * SECOND_US)
    server.append([pending], persisted_at=format_us(now + 3600 * SECOND_US))
    assert logs(server, since=format_us(now - 3600 * SECOND_US), until=format_us(now)).json() == []
    assert logs(server, since=format_us(now - 3600 * SECOND_US)).json() == []


def test_streamed_events_with_late_persistence_arrive_out_of_published_order(start):
    server = start(append_rate=100, late_fraction=0.3, late_seconds=0.6, seed=3)
    began = base_time()
    page = logs(server, since=format_us(began - 60 * SECOND_US), limit=1000)
    arrived = page.json()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        time.sleep(0.2)
        page = requests.get(page.links["next"]["url"], timeout=10)
        arrived += page.json()
    ids = [e["uuid"] for e in arrived]
    assert len(ids) == len(set(ids)) > 50
    published = [e["published"] for e in arrived]
    assert published != sorted(published), "late events should arrive after later-published ones"
    # Polling skipped nothing: every event published over a second ago (so persisted by now) has arrived.
    settled = logs(server, since=format_us(began - 60 * SECOND_US), until=format_us(base_time() - SECOND_US),
                   limit=1000).json()
    assert settled and {e["uuid"] for e in settled} <= set(ids)
    assert {e["eventType"] for e in arrived} & {"personal.admin.configuration.update",
                                                  "personal.user.app_migration.export"}


# --- filter and q --------------------------------------------------------------------------------------------

SAMPLE = {
    "eventType": "user.session.start",
    "actor": {"id": "00u1", "alternateId": "ada@example.com", "displayName": "Ada Lovelace"},
    "outcome": {"result": "FAILURE", "reason": None},
    "client": {"ipAddress": "10.0.0.7", "geographicalContext": {"city": "San Francisco"}},
    "securityContext": {"isProxy": False},
    "target": [{"id": "0oaA", "type": "AppInstance"}, {"id": "00u2", "type": "User", "alternateId": "b-c"}],
}


@pytest.mark.parametrize("expression, expected", [
    ('eventType eq "user.session.start"', True),
    ('eventType eq "user.session"', False),
    ('eventType ne "user.session.start"', False),
    ('eventType ne "app.x"', True),
    ('eventType sw "user."', True),
    ('eventType sw "personal."', False),
    ('eventType co "session"', True),
    ('eventType ew ".start"', True),
    ('eventType ew ".end"', False),
    ('client.ipAddress gt "10.0.0.6"', True),
    ('client.ipAddress ge "10.0.0.7"', True),
    ('client.ipAddress lt "10.0.0.7"', False),
    ('client.ipAddress le "10.0.0.7"', True),
    ("actor.alternateId pr", True),
    ("outcome.reason pr", False),
    ("device pr", False),
    ('target.type eq "User"', True),
    ('target.id eq "0oaA" and target.type eq "User"', True),
    ('target.id eq "nope"', False),
    ('securityContext.isProxy eq "false"', True),
    ('outcome.result eq "SUCCESS" or outcome.result eq "FAILURE"', True),
    ('eventType eq "x" and actor.id eq "00u1" or outcome.result eq "FAILURE"', True),
    ('eventType eq "x" and (actor.id eq "00u1" or outcome.result eq "FAILURE")', False),
    ('not (eventType eq "x")', True),
    ('EVENTTYPE eq "user.session.start"', False),  # attribute names are case-sensitive
    ('eventType EQ "user.session.start" AND actor.id Eq "00u1"', True),
    ('actor.displayName eq "Ada \\"The Countess\\" Lovelace"', False),
    ('missing.path ne "x"', False),
])
def test_filter_operators(expression, expected):
    assert parse_filter(expression).matches(SAMPLE) is expected


def test_filter_escaped_quotes():
    assert parse_filter('actor.displayName eq "say \\"hi\\""').matches({"actor": {"displayName": 'say "hi"'}})


@pytest.mark.parametrize("expression", [
    'eventType eqq "x"', 'eventType eq', 'eventType eq x', 'eventType eq "x', '(eventType eq "x"',
    'eventType eq "x")', 'eventType eq "x" and', 'and eventType eq "x"', '"x" eq eventType', "",
    'published gt "2026-01-01T00:00:00Z"', 'debugContext.debugData.url co "/oauth/"', 'eventType eq "x" "y"',
])
def test_bad_filters_are_refused(expression):
    with pytest.raises(FilterError):
        parse_filter(expression)


def test_filter_and_q_over_http(start):
    server = start()
    now = base_time()
    personal = event(now - 2 * SECOND_US, "personal.user.app_migration.export", client={"ipAddress": "10.1.2.3"})
    other = event(now - SECOND_US, "user.session.start", actor={"displayName": "Grace Hopper"},
                  transaction={"id": "XOxBw-2JIRnCFd0gG0GjHAAABjY"})
    server.append([personal, other])
    window = {"since": format_us(now - 60 * SECOND_US), "until": format_us(now)}
    assert [e["uuid"] for e in logs(server, **window, filter='eventType sw "personal."').json()] == [personal["uuid"]]
    assert [e["uuid"] for e in logs(server, **window, filter='client.ipAddress eq "10.1.2.3"').json()] \
        == [personal["uuid"]]
    for q in ("grace HOPPER", "XOxBw", "2JIRnCFd0gG0GjHAAABjY", "XOxBw-2JIRnCFd0gG0GjHAAABjY"):
        assert [e["uuid"] for e in logs(server, **window, q=q).json()] == [other["uuid"]], q
    assert logs(server, **window, q="grace turing").json() == []
    assert logs(server, **window, q="gra").json() == []  # keywords match whole words, not substrings
    body = assert_okta_error(logs(server, filter='eventType eqq "x"'), 400, "E0000031")
    assert body["errorSummary"] == "Invalid search criteria." and "eqq" in body["errorCauses"][0]["errorSummary"]


# --- rate limits ---------------------------------------------------------------------------------------------


def test_rate_limit_headers_then_429_then_recovery_after_the_window(start):
    window = 2
    server = start(rate_limit=3, rate_window_seconds=window)
    time.sleep(window - time.time() % window + 0.05)  # start at the beginning of a window
    responses = [logs(server) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-Rate-Limit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    reset = int(responses[0].headers["X-Rate-Limit-Reset"])
    assert reset % window == 0 and 0 < reset - time.time() <= window
    assert all(r.headers["X-Rate-Limit-Limit"] == "3" and int(r.headers["X-Rate-Limit-Reset"]) == reset
               and r.headers["Date"] for r in responses)
    assert_okta_error(responses[3], 429, "E0000047")
    refused_at = time.time()
    time.sleep(max(0.0, reset - refused_at) + 0.05)
    recovered = logs(server)
    assert recovered.status_code == 200 and recovered.headers["X-Rate-Limit-Remaining"] == "2"
    stats = server.stats
    assert stats.by_status == {200: 4, 429: 1}
    assert stats.records[-1].at - stats.records[-2].at >= reset - refused_at  # the wait, seen by the server


def test_concurrency_limit_answers_429_with_limit_0(start):
    server = start(concurrency_limit=1, fault_slow=1.0, slow_seconds=0.8)
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(response=logs(server)))
    thread.start()
    time.sleep(0.3)
    refused = logs(server)
    thread.join()
    assert slow["response"].status_code == 200
    assert_okta_error(refused, 429, "E0000047")
    assert refused.headers["X-Rate-Limit-Limit"] == "0" and refused.headers["X-Rate-Limit-Remaining"] == "0"


# --- auth ----------------------------------------------------------------------------------------------------


def test_ssws_token(start):
    server = start(token="00secret-token")
    assert_okta_error(logs(server), 401, "E0000011")
    assert_okta_error(logs(server, headers={"Authorization": "SSWS wrong"}), 401, "E0000011")
    assert_okta_error(logs(server, headers={"Authorization": "Bearer 00secret-token"}), 401, "E0000011")
    assert logs(server, headers={"Authorization": "SSWS 00secret-token"}).status_code == 200
    assert [r.auth_scheme for r in server.stats.records] == [None, "SSWS", "Bearer", "SSWS"]


def test_no_auth_configured_means_no_auth_required(start):
    assert logs(start(), headers={"Authorization": "SSWS anything"}).status_code == 200


@pytest.mark.parametrize("key_kind", ["rsa-pem", "ec-jwk"])
def test_oauth_private_key_jwt_happy_path(start, rsa_key, key_kind):
    if key_kind == "rsa-pem":
        key, algorithm, public = rsa_key, "RS256", pem_public(rsa_key)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        algorithm, public = "ES256", ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    server = start(oauth_client_id=CLIENT_ID, oauth_public_key=public, token="00also-ssws")
    response = token_request(server, assertion(server, key, algorithm))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "okta.logs.read"
    page = logs(server, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert page.status_code == 200
    assert logs(server, headers={"Authorization": "SSWS 00also-ssws"}).status_code == 200  # either is accepted
    assert_okta_error(logs(server, headers={"Authorization": "Bearer not-a-token"}), 401, "E0000011")


def test_oauth_refuses_bad_assertions(start, rsa_key):
    server = start(oauth_client_id=CLIENT_ID, oauth_public_key=pem_public(rsa_key))
    bad = {
        "signature": assertion(server, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "algorithm": assertion(server, ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "no jti": jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": server.url + TOKEN_PATH,
                              "exp": int(time.time()) + 60}, rsa_key, algorithm="RS256"),
        "audience": assertion(server, rsa_key, aud="https://example.okta.com/oauth2/v1/token"),
        "expired": assertion(server, rsa_key, exp=int(time.time()) - 10),
        "too far ahead": assertion(server, rsa_key, exp=int(time.time()) + 7200),
        "issuer": assertion(server, rsa_key, iss="0oaSomeoneElse"),
        "subject": assertion(server, rsa_key, sub="0oaSomeoneElse"),
    }
    for reason, client_assertion in bad.items():
        response = token_request(server, client_assertion)
        assert response.status_code == 401, reason
        assert response.json()["error"] == "invalid_client" and response.json()["error_description"], reason
    replayed = assertion(server, rsa_key)
    assert token_request(server, replayed).status_code == 200
    again = token_request(server, replayed)
    assert again.status_code == 401 and "already been used" in again.json()["error_description"]
    scope = token_request(server, assertion(server, rsa_key), scope="okta.users.read")
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    grant = token_request(server, assertion(server, rsa_key), grant_type="password")
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"


def test_a_token_without_the_logs_scope_is_403(start, rsa_key):
    server = start(oauth_client_id=CLIENT_ID, oauth_public_key=pem_public(rsa_key),
                   oauth_scopes=("okta.logs.read", "okta.users.read"))
    response = token_request(server, assertion(server, rsa_key), scope="okta.users.read")
    assert response.status_code == 200
    denied = logs(server, headers={"Authorization": f"Bearer {response.json()['access_token']}"})
    assert_okta_error(denied, 403, "E0000006")


def test_access_tokens_expire(start, rsa_key):
    server = start(oauth_client_id=CLIENT_ID, oauth_public_key=pem_public(rsa_key), token_ttl=1)
    body = token_request(server, assertion(server, rsa_key)).json()
    assert body["expires_in"] == 1
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert logs(server, headers=headers).status_code == 200
    time.sleep(1.1)
    assert_okta_error(logs(server, headers=headers), 401, "E0000011")


def test_dpop_nonce_dance_and_bound_token(start, rsa_key):
    server = start(oauth_client_id=CLIENT_ID, oauth_public_key=pem_public(rsa_key), require_dpop=True)
    token_url, logs_url = server.url + TOKEN_PATH, server.url + LOGS
    dpop_key = ec.generate_private_key(ec.SECP256R1())
    assert token_request(server, assertion(server, rsa_key)).json()["error"] == "invalid_dpop_proof"
    challenge = token_request(server, assertion(server, rsa_key), dpop=dpop_proof(dpop_key, "POST", token_url))
    assert challenge.status_code == 400
    assert challenge.json() == {"error": "use_dpop_nonce",
                                "error_description": "Authorization server requires nonce in DPoP proof."}
    nonce = challenge.headers["DPoP-Nonce"]
    granted = token_request(server, assertion(server, rsa_key),
                            dpop=dpop_proof(dpop_key, "POST", token_url, nonce=nonce))
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "DPoP"
    access_token = granted.json()["access_token"]

    def call(proof: str | None, scheme: str = "DPoP") -> requests.Response:
        headers = {"Authorization": f"{scheme} {access_token}", **({"DPoP": proof} if proof else {})}
        return logs(server, headers=headers, limit=5)

    assert call(dpop_proof(dpop_key, "GET", logs_url, access_token=access_token)).status_code == 200
    wrong_ath = dpop_proof(dpop_key, "GET", logs_url, access_token="some-other-token")
    refused = call(wrong_ath)
    assert_okta_error(refused, 401, "E0000011")
    assert "invalid_dpop_proof" in refused.headers["WWW-Authenticate"]
    replayed = dpop_proof(dpop_key, "GET", logs_url, access_token=access_token)
    assert call(replayed).status_code == 200
    assert call(replayed).status_code == 401
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert call(dpop_proof(other_key, "GET", logs_url, access_token=access_token)).status_code == 401
    assert call(dpop_proof(dpop_key, "POST", logs_url, access_token=access_token)).status_code == 401
    assert call(dpop_proof(dpop_key, "GET", logs_url, access_token=access_token, iat=int(time.time()) - 120)
                ).status_code == 401
    assert call(None).status_code == 401
    assert call(dpop_proof(dpop_key, "GET", logs_url, access_token=access_token), scheme="Bearer").status_code == 401


# --- faults --------------------------------------------------------------------------------------------------


def test_reset_fault_is_a_connection_error(start):
    server = start(fault_reset=1.0)
    with pytest.raises(requests.ConnectionError):
        logs(server)
    assert server.stats.by_status == {0: 1}


def test_truncate_fault_cuts_the_body(start):
    server = start(fault_truncate=1.0)
    server.append([event(base_time() - i * SECOND_US) for i in range(1, 30)])
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        logs(server, since=format_us(base_time() - 60 * SECOND_US))


def test_5xx_fault_is_a_proxy_error_that_counts_against_the_rate_limit(start):
    server = start(fault_5xx=1.0, fault_seed=1, rate_limit=2, rate_window_seconds=60)
    first, second, third = logs(server), logs(server), logs(server)
    for response in (first, second):
        assert response.status_code in (502, 503, 504)
        assert not response.headers["Content-Type"].startswith("application/json")
        with pytest.raises(ValueError):
            response.json()
    assert_okta_error(third, 429, "E0000047")


def test_timeout_fault_is_E0000009(start):
    assert_okta_error(logs(start(fault_timeout=1.0)), 500, "E0000009")


def test_slow_fault_delays_the_answer(start):
    server = start(fault_slow=1.0, slow_seconds=0.5)
    began = time.monotonic()
    assert logs(server).status_code == 200
    assert time.monotonic() - began >= 0.5


def test_faults_are_reproducible_with_a_seed(start):
    def statuses(server):
        outcomes = []
        for _ in range(12):
            try:
                outcomes.append(logs(server).status_code)
            except requests.ConnectionError:
                outcomes.append("reset")
        return outcomes

    config = {"fault_seed": 42, "fault_5xx": 0.3, "fault_reset": 0.2, "fault_timeout": 0.2}
    assert statuses(start(**config)) == statuses(start(**config))


# --- the rest of the HTTP surface ----------------------------------------------------------------------------


def test_unknown_paths_and_methods_get_okta_errors(start):
    server = start()
    assert_okta_error(requests.get(server.url + "/api/v1/users", timeout=10), 404, "E0000007")
    assert_okta_error(requests.post(server.url + LOGS, timeout=10), 405, "E0000022")


def test_keep_alive_connection_serves_many_requests(start):
    server = start(generate=300, days=1)
    with requests.Session() as session:
        for _ in range(5):
            assert session.get(server.url + LOGS, timeout=10).status_code == 200


def test_events_file_with_bad_lines(start, tmp_path):
    now = base_time()
    good = [event(now - i * SECOND_US) for i in range(1, 4)]
    path = write_jsonl(tmp_path / "export.jsonl.gz", [*good, "this is not json", {"uuid": "no-time"}], gz=True)
    server = start(events_file=str(path))
    assert server.skipped_lines == 2 and server.event_count == 3
    served = logs(server, since=format_us(now - 60 * SECOND_US), until=format_us(now)).json()
    assert sorted(e["uuid"] for e in served) == sorted(e["uuid"] for e in good)


def test_a_1000_event_page_is_fast_with_300k_events_loaded(start):
    server = start()
    now = base_time()
    start_us = now - DAY_US
    template = {"eventType": "user.session.start", "version": "0", "severity": "INFO"}
    server.append([{**template, "uuid": f"e{i}", "published": format_us(start_us + i * 250_000)}
                   for i in range(300_000)])
    assert server.event_count == 300_000
    with requests.Session() as session:
        page = session.get(server.url + LOGS, params={"since": format_us(start_us), "until": format_us(now),
                                                      "limit": 1000}, timeout=10)
        timings = []
        for _ in range(10):
            began = time.perf_counter()
            page = session.get(page.links["next"]["url"], timeout=10)
            timings.append(time.perf_counter() - began)
            assert len(page.json()) == 1000
    assert sorted(timings)[len(timings) // 2] < 0.1, timings


# --- the official Okta SDK -----------------------------------------------------------------------------------


@pytest.fixture
def sdk_allows_http(monkeypatch):
    # The SDK's own switch for non-https org URLs (config key testing.testingDisableHttpsCheck, read from the
    # environment); in 3.4.6 it cannot be passed in the Client's dict, which lands under "client".
    monkeypatch.setenv("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")


def test_fidelity_the_official_sdk_pages_a_bounded_range(start, sdk_allows_http):
    from okta.client import Client as OktaClient
    from okta.pagination import paginate_pages

    token = "00sdk-fidelity-token"
    server = start(generate=2500, days=1, token=token)
    now = base_time()
    since, until = format_us(now - 2 * DAY_US), format_us(now + 60 * SECOND_US)

    async def every_page():
        client = OktaClient({"orgUrl": server.url, "token": token})
        first, response, error = await client.list_log_events(since=since, until=until, limit=1000)
        assert error is None and len(first) == 1000 and response.status_code == 200
        pages = [page async for page, _number, _more in
                 paginate_pages(client.list_log_events, limit=1000, since=since, until=until)]
        return [[event.uuid for event in page] for page in pages]

    pages = asyncio.run(every_page())
    assert [len(page) for page in pages] == [1000, 1000, 500]
    ids = [uid for page in pages for uid in page]
    assert len(ids) == len(set(ids)) == 2500
    expected = {orjson.loads(record.data)["uuid"] for record in generated_records(
        event_generator(7, 0.25, 1.0, now), 2500)}
    assert set(ids) == expected
    assert server.stats.by_status == {200: 4}


def test_fidelity_the_official_sdk_gets_a_dpop_token(start, rsa_key, sdk_allows_http):
    from okta.client import Client as OktaClient

    server = start(generate=50, days=1, oauth_client_id=CLIENT_ID, oauth_public_key=pem_public(rsa_key),
                   require_dpop=True)
    private_pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()).decode()

    async def one_page():
        client = OktaClient({"orgUrl": server.url, "authorizationMode": "PrivateKey", "clientId": CLIENT_ID,
                             "scopes": ["okta.logs.read"], "privateKey": private_pem, "dpopEnabled": True})
        events, _response, error = await client.list_log_events(since=format_us(base_time() - 2 * DAY_US),
                                                                 limit=20)
        assert error is None
        return events

    assert len(asyncio.run(one_page())) == 20
    assert server.stats.token_requests == 2  # the use_dpop_nonce challenge, then the retry
    assert [r.auth_scheme for r in server.stats.records] == ["DPoP"]


# --- command line --------------------------------------------------------------------------------------------


def test_help_documents_every_setting():
    help_text = build_parser().format_help()
    from_files = {"token": "--token-file", "oauth_public_key": "--oauth-public-key-file"}
    for field in fields(EmulatorConfig):
        flag = from_files.get(field.name, "--" + field.name.replace("_", "-"))
        assert flag in help_text, flag
    assert "--ready-file" in help_text


def test_command_line_server_runs_until_sigterm(tmp_path):
    ready = tmp_path / "ready"
    token_file = tmp_path / "token"
    token_file.write_text("00cli-token\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.system_log_server", "--generate", "120", "--days", "1",
         "--token-file", str(token_file),
         "--ready-file", str(ready), "--rate-limit", "50"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the emulator did not become ready"
            time.sleep(0.05)
        url = ready.read_text().strip()
        page = requests.get(url + LOGS, params={"limit": 1000}, headers={"Authorization": "SSWS 00cli-token"},
                            timeout=10)
        assert page.status_code == 200 and len(page.json()) == 120
        assert page.headers["X-Rate-Limit-Limit"] == "50"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        stderr = process.stderr.read()
        assert f"listening on {url} (120 events)" in stderr
        assert "00cli-token" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_refuses_bad_settings():
    process = subprocess.run([sys.executable, "-m", "devtools.system_log_server", "--fault-reset", "1.5"], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert process.returncode == 2 and "fault_reset must be between 0 and 1" in process.stderr



def test_stop_also_ends_idle_keep_alive_connections():
    server = SystemLogServer().start()
    with requests.Session() as session:
        assert session.get(server.url + LOGS, timeout=10).status_code == 200
        server.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(server.url + LOGS, timeout=10)
