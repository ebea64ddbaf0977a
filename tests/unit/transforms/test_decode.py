"""Decoding payloads into validated LogEvents: every shape, every way to be wrong."""

import json

import pytest

from tests.support.helpers import FIXTURES, load_jsonl
from transforms.decode import decode_batch
from transforms.envelope import InvalidEvent, parse_published, unwrap, validate
from transforms.records import RawBatch


def batch(*payloads, kind="line"):
    data = [p if isinstance(p, bytes) else json.dumps(p).encode() for p in payloads]
    return RawBatch("test.jsonl", kind, list(range(1, len(data) + 1)), data)


EVENT = {"uuid": "u-1", "eventType": "personal.user.app_migration.export",
         "published": "2026-03-01T10:05:12.345Z"}


@pytest.mark.parametrize("text, micros, day", [
    ("2026-03-01T10:05:12.345Z", 1772359512345000, "2026-03-01"),
    ("2026-03-01T10:05:12Z", 1772359512000000, "2026-03-01"),
    ("2026-03-01T10:05:12.345678Z", 1772359512345678, "2026-03-01"),
    ("2026-03-01T10:05:12.345678999Z", 1772359512345678, "2026-03-01"),  # cut to microseconds
    ("2026-03-01T23:30:00.000-05:00", 1772425800000000, "2026-03-02"),  # next UTC day
    ("2026-03-01T00:30:00+02:00", 1772317800000000, "2026-02-28"),  # previous UTC day
    ("2022-03-22 14:21:53.225", 1647958913225000, "2022-03-22"),  # Panther's form, no offset = UTC
    ("2026-03-01t10:05:12Z", 1772359512000000, "2026-03-01"),
])
def test_parse_published_accepts_rfc3339_forms(text, micros, day):
    assert parse_published(text) == (micros, day)


@pytest.mark.parametrize("value, reason", [
    ("2017-09-31T22:23:07.777Z", "not a valid timestamp"),  # the impossible date in Okta's docs
    ("redacted", "not an RFC 3339 timestamp"),
    ("2026-03-01", "not an RFC 3339 timestamp"),  # a date without a time
    ("20260301T101010", "not an RFC 3339 timestamp"),  # ISO basic format
    ("", "not an RFC 3339 timestamp"),
    (1772359512, "must be a string, got number"),
    (None, "must be a string, got null"),
])
def test_parse_published_rejects_with_a_reason(value, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_published(value)


def test_unwrap_recognises_every_container():
    hook = {"eventType": "com.okta.event_hook", "data": {"events": [EVENT, EVENT]}}
    bridge = {"version": "0", "detail-type": "SystemLog", "source": "okta", "detail": EVENT}
    assert [w for _, w in unwrap(EVENT)] == [True]
    assert [e for e, _ in unwrap([EVENT, 1])] == [EVENT, 1]
    assert [e for e, _ in unwrap(hook)] == [EVENT, EVENT]
    assert [e for e, _ in unwrap(bridge)] == [EVENT]
    with pytest.raises(InvalidEvent, match="'data.events' must be an array"):
        list(unwrap({"data": {"events": {"not": "a list"}}}))


@pytest.mark.parametrize("candidate, reason", [
    ({"eventType": "x", "published": "2026-03-01T10:05:12Z"}, "missing required field 'uuid'"),
    ({"uuid": "", "eventType": "x", "published": "2026-03-01T10:05:12Z"}, "'uuid' must be a non-empty string"),
    ({"uuid": 7, "eventType": "x", "published": "2026-03-01T10:05:12Z"},
     "'uuid' must be a non-empty string, got number"),
    ({"uuid": "u", "published": "2026-03-01T10:05:12Z"}, "missing required field 'eventType'"),
    ({"uuid": "u", "eventType": ["x"], "published": "2026-03-01T10:05:12Z"},
     "'eventType' must be a non-empty string, got array"),
    ({"uuid": "u", "eventType": "x"}, "missing required field 'published'"),
    ({"uuid": "u", "eventType": "x", "published": None}, "missing required field 'published'"),
    ("a string", "must be a JSON object, got string"),
    ([1, 2], "must be a JSON object, got array"),
])
def test_validate_names_the_problem(candidate, reason):
    with pytest.raises(InvalidEvent, match=reason):
        validate(candidate)


def test_decode_batch_accounts_for_every_input():
    hook = {"eventType": "com.okta.event_hook", "data": {"events": [EVENT, {"uuid": "x"}]}}
    events, dead, read, _ = decode_batch(batch(
        EVENT,                       # 1 event
        [EVENT, EVENT, "nope"],      # 3 candidates, one bad
        hook,                        # 2 candidates, one bad
        b"not json at all",          # 1 bad
        b'{"uuid": "cut-off", "publ',  # 1 bad
        b"\xff\xfe garbage",         # 1 bad (not UTF-8)
        {"data": {"events": "x"}},   # a broken envelope: 1 bad
        42,                          # 1 bad
        [],                          # an empty page: nothing to read
    ))
    assert read == 11
    assert len(events) + len(dead) == read
    assert len(events) == 4
    assert sorted(d["stage"] for d in dead) == ["decode"] * 4 + ["validate"] * 3
    by_position = {d["position"]: d for d in dead}
    assert by_position["line 2 event 2"]["error"] == "a LogEvent must be a JSON object, got string"
    assert by_position["line 3 event 1"]["error"] == "missing required field 'eventType'"
    assert by_position["line 3 event 1"]["uuid"] == "x"
    assert by_position["line 4"]["payload"] == "not json at all"
    assert by_position["line 4"]["error"].startswith("not valid JSON")
    assert by_position["line 6"]["error"].startswith("not valid UTF-8")
    assert by_position["line 6"]["payload"] == "\\xff\\xfe garbage"
    assert "payload_encoding" in by_position["line 6"]
    assert by_position["line 8"]["error"] == "a LogEvent must be a JSON object, got number"


def test_whole_line_events_keep_their_original_text():
    line = b'{"uuid":"u-1",  "eventType":"personal.x", "published":"2026-03-01T10:05:12Z", "n": 1.0}\r\n'
    events, dead, _, _ = decode_batch(RawBatch("f", "line", [1], [line]))
    assert not dead
    assert events[0].raw_text() == line.strip()
    assert events[0].where == "line 1"


def test_utf8_bom_and_big_integers_are_not_errors():
    bom = b"\xef\xbb\xbf" + json.dumps(EVENT).encode()
    big = json.dumps({**EVENT, "n": 10 ** 30}).encode()
    events, dead, read, _ = decode_batch(batch(bom, big))
    assert (len(events), len(dead), read) == (2, 0, 2)
    assert events[0].raw_text().startswith(b"{")


def test_dead_letter_payloads_are_capped_and_flagged():
    huge = b'{"uuid": "' + b"x" * 5000 + b'"'  # cut off: not JSON
    _, dead, _, _ = decode_batch(batch(huge), max_payload_bytes=1024)
    assert dead[0]["payload_truncated"] is True
    assert dead[0]["payload_bytes"] == len(huge)
    assert len(dead[0]["payload"].encode()) <= 1024


def test_real_incomplete_events_are_all_rejected_with_reasons():
    """Panther's lower-cased and cut-down test logs: none is a usable LogEvent."""
    lines = (FIXTURES / "incomplete-okta-like-events.jsonl").read_bytes().splitlines()
    events, dead, read, _ = decode_batch(RawBatch("incomplete", "line", list(range(1, len(lines) + 1)), lines))
    assert read == len(lines) == 61
    assert events == []
    reasons = {d["error"] for d in dead}
    assert any("missing required field" in r for r in reasons)


def test_real_event_hook_envelope_is_unwrapped():
    line = (FIXTURES / "event-hook-envelopes.jsonl").read_bytes().strip()
    events, dead, read, _ = decode_batch(RawBatch("hook", "line", [1], [line]))
    inner = load_jsonl(FIXTURES / "event-hook-envelopes.jsonl")[0]["data"]["events"]
    assert (read, len(dead)) == (len(inner), 0)
    assert [e.uuid for e in events] == [e["uuid"] for e in inner]
    assert events[0].raw_text() is None  # it came out of a container: re-serialised later


def test_selection_drops_other_types_and_counts_them():
    other = {**EVENT, "uuid": "u-2", "eventType": "user.session.start"}
    bad_other = {**other, "published": "nope"}
    events, dead, read, filtered = decode_batch(batch(EVENT, other, bad_other),
                                                selection=lambda t: t.startswith("personal."))
    assert [e.uuid for e in events] == ["u-1"]
    assert (read, filtered, len(dead)) == (3, 1, 1)  # a bad event is dead-lettered whatever its type


def test_nan_and_infinity_are_not_json_on_either_decoder_path():
    # orjson refuses them and the standard-library fallback must too (found by the hypothesis suite).
    from transforms import jsonio

    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        payload = b'{"uuid":"u1","eventType":"personal.admin.configuration.update",' \
                  b'"published":"2026-03-01T10:05:12.345Z","debugContext":' + constant + b"}"
        with pytest.raises(jsonio.NotJson):
            jsonio.loads(payload)
