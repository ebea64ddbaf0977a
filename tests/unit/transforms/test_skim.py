"""The decoder's shortcuts are exact: same counts, rows and dead letters as a full decode into dicts.

Two shortcuts: the skim (msgspec, envelope only) judges a payload the selection does not keep without
building it; the typed decoder (:class:`transforms.shortcuts.LineDecoder`) decodes a kept line straight
into its row values. These tests decode tricky payloads both ways and require identical results.
"""

import json

import pytest

from tests.support.helpers import decode_outcome
from transforms.decode import decode_batch
from transforms.records import RawBatch
from transforms.selection import EventTypeSelection
from transforms.shortcuts import LineDecoder, surely_filtered

PUBLISHED = "2026-03-01T10:05:12.345Z"
P = PUBLISHED.encode()
SELECTION = EventTypeSelection.parse("personal.*")


def line(**fields) -> bytes:
    return json.dumps({"uuid": "u-1", "eventType": "user.session.start", "published": PUBLISHED,
                       **fields}).encode()


TRICKY = {
    "unselected": line(),
    "selected": line(eventType="personal.user.app_migration.export"),
    "selected, escaped dot": b'{"uuid":"u-1","eventType":"personal\\u002euser.x","published":"' + P + b'"}',
    "selected, escaped key": b'{"uuid":"u-1","event\\u0054ype":"personal.user.x","published":"' + P + b'"}',
    "unselected, escaped": b'{"uuid":"u-1","eventType":"user\\u002esession.start","published":"' + P + b'"}',
    "selected type inside another field": line(displayMessage='"eventType":"personal.user.x"',
                                               debugContext={"eventType": "personal.user.x"}),
    "selected type only in a nested object": b'{"uuid":"u-1","published":"' + P
                                             + b'","actor":{"eventType":"personal.user.x"}}',
    "unselected top-level, selected nested": line(actor={"eventType": "personal.user.x"}),
    "selected top-level, unselected nested": line(eventType="personal.user.x",
                                                  actor={"eventType": "user.session.start"}),
    "duplicate key, last selected": line()[:-1] + b',"eventType":"personal.user.x"}',
    "duplicate key, last unselected": line(eventType="personal.user.x")[:-1] + b',"eventType":"user.y"}',
    "bad published, unselected": line(published="yesterday"),
    "bad published, selected": line(eventType="personal.user.x", published="2017-09-31T22:23:07.777Z"),
    "missing uuid, unselected": json.dumps({"eventType": "user.y", "published": PUBLISHED}).encode(),
    "empty uuid, unselected": line(uuid=" "),
    "numeric uuid, unselected": line(uuid=5),
    "empty eventType": line(eventType=""),
    "truncated, unselected": line()[:-10],
    "truncated, selected": line(eventType="personal.user.x")[:-10],
    "invalid UTF-8 in a skipped field": line()[:-1] + b',"x":"\xff"}',
    "overlong UTF-8 in a skipped field": line()[:-1] + b',"x":"\xc0\xaf"}',
    "encoded surrogate in a skipped field": line()[:-1] + b',"x":"\xed\xa0\x80"}',
    "valid UTF-8, unselected": line(displayMessage="São Paulo ✓"),
    "lone surrogate escape in a skipped field": line()[:-1] + b',"x":"\\ud800"}',
    "NaN in a skipped field": line()[:-1] + b',"x":NaN}',
    "big integer": line()[:-1] + b',"x":123456789012345678901234567890}',
    "nested too deeply": line()[:-1] + b',"x":' + b"[" * 3000 + b"]" * 3000 + b"}",
    "control character in a string": line()[:-1] + b',"x":"a\x01b"}',
    "trailing garbage": line() + b" x",
    "trailing comma": line()[:-1] + b",}",
    "byte-order mark": b"\xef\xbb\xbf" + line(),
    "leading space": b"  " + line(),
    "an array": b"[" + line() + b"]",
    "an event hook envelope": json.dumps({"eventType": "com.okta.event_hook", "data": {"events": [
        json.loads(line()), json.loads(line(uuid="u-2", eventType="personal.user.x"))]}}).encode(),
    "not JSON": b"this is not json",
    "uuid null": line(uuid=None),
    "published null": line(published=None),
    "published number": line(published=5),
}


def summary(decoded):
    return (decoded.read, decoded.filtered, [e.uuid for e in decoded.events],
            [(d["stage"], d["error"], d["position"], d["payload"]) for d in decoded.dead_letters])


@pytest.mark.parametrize("name", list(TRICKY))
def test_skim_agrees_with_the_full_decode(name):
    payload = TRICKY[name]
    batch = RawBatch("t.jsonl", "line", [1], [payload])
    full = decode_batch(batch, selection=SELECTION, skim=False)
    skimmed = decode_batch(batch, selection=SELECTION)
    assert summary(skimmed) == summary(full)


def test_every_tricky_line_together_and_bad_ones_are_dead_letters():
    payloads = list(TRICKY.values())
    batch = RawBatch("t.jsonl", "line", list(range(1, len(payloads) + 1)), payloads)
    full = decode_batch(batch, selection=SELECTION, skim=False)
    skimmed = decode_batch(batch, selection=SELECTION)
    assert summary(skimmed) == summary(full)
    assert skimmed.read == len(skimmed.events) + len(skimmed.dead_letters) + skimmed.filtered
    dead = {d["position"] for d in skimmed.dead_letters}
    names = list(TRICKY)
    for bad in ("bad published, unselected", "invalid UTF-8 in a skipped field", "truncated, unselected",
                "missing uuid, unselected", "nested too deeply", "trailing garbage", "encoded surrogate in a "
                "skipped field", "overlong UTF-8 in a skipped field", "control character in a string"):
        assert f"line {names.index(bad) + 1}" in dead, bad
    kept = {e.event_type for e in skimmed.events}
    assert kept == {"personal.user.x", "personal.user.app_migration.export"}


@pytest.mark.parametrize("name, expected", [
    ("unselected", True), ("unselected, escaped", True), ("selected type inside another field", True),
    ("unselected top-level, selected nested", True), ("big integer", True), ("valid UTF-8, unselected", True),
    ("selected", False), ("selected, escaped dot", False), ("selected, escaped key", False),
    ("bad published, unselected", False), ("invalid UTF-8 in a skipped field", False),
    ("NaN in a skipped field", False), ("an array", False), ("duplicate key, last selected", False),
    ("duplicate key, last unselected", True),
])
def test_surely_filtered_says_true_only_for_valid_unselected_events(name, expected):
    assert surely_filtered(TRICKY[name], SELECTION) is expected


def test_the_skim_is_off_when_every_type_is_kept():
    payload = TRICKY["invalid UTF-8 in a skipped field"]
    decoded = decode_batch(RawBatch("t", "line", [1], [payload]), selection=EventTypeSelection.parse("*"))
    assert [d["stage"] for d in decoded.dead_letters] == ["decode"]


@pytest.mark.parametrize("extra_levels, kept", [(0, True), (1, False)])
def test_nesting_at_the_shared_limit_is_judged_the_same_both_ways(extra_levels, kept):
    from transforms.jsonio import MAX_DEPTH

    depth = MAX_DEPTH - 1 + extra_levels  # the event object itself is one level
    payload = line()[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    batch = RawBatch("t.jsonl", "line", [1], [payload])
    full = decode_batch(batch, selection=SELECTION, skim=False)
    assert summary(decode_batch(batch, selection=SELECTION)) == summary(full)
    assert (full.filtered == 1) is kept
    assert (len(full.dead_letters) == 1) is not kept


def personal(**fields) -> bytes:
    return line(**{"eventType": "personal.user.x", **fields})


#: Kept lines the typed decoder must leave to the full path, or decode to the very same values.
TYPED_TRICKY = {
    "a clean personal event": personal(actor={"id": "a1", "type": "User", "alternateId": "a@x", "displayName": "A"},
                                       target=[{"id": "t1", "type": "AppInstance"}, {"id": "t2", "alternateId": "b"}],
                                       client={"ipAddress": "10.0.0.1", "userAgent": {"rawUserAgent": "ua"},
                                               "geographicalContext": {"country": "FR"}},
                                       securityContext={"isProxy": False}, transaction={"id": "tx"},
                                       authenticationContext={"externalSessionId": "s"}, outcome={"result": "OK"},
                                       version="0", severity="INFO", displayMessage="d", legacyEventType="l"),
    "a number to coerce": personal(version=0),
    "a boolean to coerce": personal(actor={"id": True}),
    "an object in a string field": personal(actor={"id": {"x": 1}}),
    "a string in a boolean field": personal(securityContext={"isProxy": "true"}),
    "a number in a boolean field": personal(securityContext={"isProxy": 1}),
    "an array where an object belongs": personal(client=[{"ipAddress": "x"}]),
    "a string where an object belongs": personal(actor="someone"),
    "target not an array": personal(target={"id": "t"}),
    "a null target entry": personal(target=[None, {"id": "t"}]),
    "a string target entry": personal(target=["t"]),
    "an empty target": personal(target=[]),
    "a null target": personal(target=None),
    "a wrong type in a target": personal(target=[{"id": 5}]),
    "null nested objects": personal(actor=None, client={"userAgent": None}, securityContext=None),
    "empty nested objects": personal(actor={}, client={"geographicalContext": {}}),
    "duplicate object, last null": personal(actor={"id": "a"})[:-1] + b',"actor":null}',
    "duplicate field, last wins": personal(version="1")[:-1] + b',"version":"2"}',
    "duplicate field, first wrong type": personal(version=1)[:-1] + b',"version":"2"}',
    "escapes in a kept field": personal()[:-1] + rb',"displayMessage":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \t"}',
    "lone surrogate in a kept field": personal()[:-1] + b',"displayMessage":"\\ud800"}',
    "lone surrogate in a skipped field": personal()[:-1] + b',"x":"\\udc00"}',
    "invalid UTF-8 in a kept field": personal()[:-1] + b',"displayMessage":"\xff"}',
    "invalid UTF-8 in a skipped field": personal()[:-1] + b',"x":"\xc3("}',
    "1e400 in a skipped field": personal()[:-1] + b',"x":1e400}',
    "1e400 in a kept field": personal()[:-1] + b',"version":1e400}',
    "a big integer in a kept field": personal()[:-1] + b',"version":123456789012345678901234567890}',
    "NaN in a kept field": personal()[:-1] + b',"version":NaN}',
    "published with an offset": personal(published="2026-03-01T23:30:00+02:00"),
    "published without a zone": personal(published="2026-03-01 10:05:12"),
    "published with nine digits": personal(published="2026-03-01T10:05:12.123456789Z"),
    "published out of range": personal(published="0001-01-01T00:30:00+01:00"),
    "published invalid": personal(published="2026-02-30T10:05:12Z"),
    "uuid of spaces": personal(uuid="  "),
    "uuid missing": json.dumps({"eventType": "personal.user.x", "published": PUBLISHED}).encode(),
    "eventType with a slash": personal(eventType="personal.user/../x"),
    "a Windows line end": personal() + b"\r",
    "nested too deeply": personal()[:-1] + b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
    "nested at the limit": personal()[:-1] + b',"x":' + b"[" * 1023 + b"]" * 1023 + b"}",
}


@pytest.mark.parametrize("raw_event", [True, False])
@pytest.mark.parametrize("name", list(TYPED_TRICKY) + list(TRICKY))
def test_the_typed_decoder_agrees_with_the_full_decode(name, raw_event):
    payload = TYPED_TRICKY.get(name, TRICKY.get(name))
    batch = RawBatch("t.jsonl", "line", [7], [payload])
    typed = decode_outcome(batch, SELECTION, raw_event, typed=LineDecoder())
    assert typed == decode_outcome(batch, SELECTION, raw_event, typed=None)


def test_the_typed_decoder_takes_clean_lines_and_leaves_the_rest():
    """It really runs (the agreement above would hold if it never did): clean kept lines carry no dict."""
    names = list(TYPED_TRICKY)
    batch = RawBatch("t.jsonl", "line", list(range(1, len(names) + 1)), [TYPED_TRICKY[n] for n in names])
    events = {names[e.position - 1]: e for e in decode_batch(batch, selection=SELECTION, typed=LineDecoder(),
                                                             prepare=lambda event: ((), [])).events}
    for name in ("a clean personal event", "an empty target", "null nested objects", "duplicate field, last wins",
                 "published with an offset", "escapes in a kept field", "1e400 in a skipped field"):
        assert events[name].event is None, name
    # ("nested at the limit" may go either way: msgspec's own depth limit follows the Python version.)
    for name in ("a number to coerce", "a null target entry", "a string in a boolean field", "nested too deeply",
                 "invalid UTF-8 in a skipped field", "lone surrogate in a kept field"):
        assert name not in events or events[name].event is not None, name
    assert events["a clean personal event"].prepared[1] == [(0, "t1", "AppInstance", None), (1, "t2", None, "b")]
