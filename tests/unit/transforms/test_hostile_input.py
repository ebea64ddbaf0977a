"""Property-based tests: LogEvents with anything missing, null, mistyped, deep, huge or not UTF-8.

For every generated input the decode + flatten functions (the code every source uses) never raise, account
for each payload exactly once (kept, filtered out, duplicate or dead letter), and every row they produce is
the reference flattening's row. A smaller run goes through the whole pipeline to the lake.
"""

from __future__ import annotations

import copy
import json

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from common.json_scan import split_array
from tests.support.helpers import PERSONAL_TYPES, decode_outcome, read_lake, real_events, run_pipeline, write_jsonl
from tests.support.reference import Reject, expected_rows
from transforms.decode import decode_batch
from transforms.flatten import Flattener
from transforms.records import RawBatch
from transforms.selection import EventTypeSelection
from transforms.shortcuts import LineDecoder

TEMPLATES = real_events()
SELECTION = EventTypeSelection.parse("personal.*")

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
PATHS = ["uuid", "published", "eventType", "version", "severity", "displayMessage", "actor", "actor.id",
         "actor.alternateId", "client", "client.ipAddress", "client.geographicalContext",
         "client.geographicalContext.geolocation", "outcome", "outcome.result", "target", "debugContext",
         "debugContext.debugData", "authenticationContext", "securityContext", "request", "transaction",
         "securityContext.isProxy", "client.userAgent", "client.userAgent.rawUserAgent", "actor.displayName",
         "transaction.id", "authenticationContext.externalSessionId", "legacyEventType", "outcome.reason"]


def _set(event: dict, path: str, value) -> None:
    keys = path.split(".")
    node = event
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def _delete(event: dict, path: str) -> None:
    keys = path.split(".")
    node = event
    for key in keys[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(keys[-1], None)


@st.composite
def hostile_events(draw) -> bytes:
    """One payload: a real event made personal (or not), then damaged in a few ways."""
    event = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    event["uuid"] = draw(st.uuids()).hex
    if draw(st.booleans()):
        event["eventType"] = draw(st.sampled_from(PERSONAL_TYPES))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        change = draw(st.sampled_from(["delete", "null", "value", "array", "deep", "huge"]))
        if change == "delete":
            _delete(event, path)
        elif change == "null":
            _set(event, path, None)
        elif change == "value":
            _set(event, path, draw(json_values))
        elif change == "array":
            _set(event, path, [draw(json_values), {"id": "x"}])
        elif change == "deep":
            nested: object = "bottom"
            for _ in range(draw(st.integers(50, 400))):
                nested = {"n": nested}
            _set(event, path, nested)
        else:
            _set(event, path, "x" * draw(st.integers(100_000, 2_000_000)))
    data = json.dumps(event, ensure_ascii=draw(st.booleans())).encode()
    mangle = draw(st.sampled_from(["none", "none", "none", "latin1", "cut", "bom"]))
    if mangle == "latin1":
        data = data.replace(b'"', b'"\xe9', 1)
    elif mangle == "cut":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif mangle == "bom":
        data = b"\xef\xbb\xbf" + data
    return data


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")  # Python's json accepts NaN and Infinity; JSON does not


def _reference(payload: bytes):
    """What must become of a payload: ('rows', rows) | ('filtered', None) | ('dead', None)."""
    try:
        event = json.loads(payload.decode("utf-8").lstrip("\ufeff"), parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError):
        return "dead", None
    if not isinstance(event, dict):
        return "dead", None
    try:
        rows = expected_rows(event)
    except (Reject, RecursionError):
        return "dead-or-filtered", None
    if not event["eventType"].startswith("personal."):
        return "filtered", None
    return "rows", rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_events(), min_size=1, max_size=6))
def test_decode_and_flatten_account_for_every_payload_and_match_the_reference(payloads):
    batch = RawBatch("hypothesis", "line", list(range(1, len(payloads) + 1)), payloads)
    flattener = Flattener(raw_event=False)
    decoded = decode_batch(batch, 16 * 1024 * 1024, SELECTION, flattener.prepare)
    flat = flattener.flatten(decoded.events)
    written = sum(flat.events.values())
    dead = len(decoded.dead_letters) + len(flat.dead_letters)
    assert decoded.read == len(payloads)
    assert decoded.read == written + decoded.filtered + flat.duplicates + dead
    rows = {(r["uuid"], r["target_index"]): r for t in flat.tables.values() for r in t.to_pylist()}
    for payload in payloads:
        outcome, want = _reference(payload)
        if outcome == "rows":
            for row in want:
                got = rows[(row["uuid"], row["target_index"])]
                for column in ("published", "actor_id", "client_ip_address", "target_id", "outcome_result",
                               "severity", "display_message"):
                    if column in row and column in got:
                        assert got[column] == row[column], (column, got[column], row[column])
        elif outcome in ("dead", "dead-or-filtered"):
            try:
                uuid = json.loads(payload.decode("utf-8").lstrip("\ufeff")).get("uuid")
            except Exception:  # noqa: BLE001 - undecodable: nothing of it can be in the rows
                uuid = None
            assert not any(key[0] == uuid for key in rows) or uuid is None
    for record in decoded.dead_letters + flat.dead_letters:
        assert record["error"] and "payload" in record and len(record["payload"]) <= 16 * 1024 * 1024


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_events(), min_size=1, max_size=6), st.booleans())
def test_the_typed_decoder_changes_nothing(payloads, raw_event):
    """Decoding whole lines straight into row values (LineDecoder) gives the very same events, rows, counts
    and dead letters as decoding them into dicts, whatever is wrong with them."""
    batch = RawBatch("hypothesis", "line", list(range(1, len(payloads) + 1)), payloads)
    assert decode_outcome(batch, SELECTION, raw_event, typed=LineDecoder()) == \
        decode_outcome(batch, SELECTION, raw_event, typed=None)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_events(), min_size=5, max_size=30))
def test_the_whole_pipeline_never_crashes_and_balances(tmp_path_factory, payloads):
    folder = tmp_path_factory.mktemp("hostile")
    export = write_jsonl(folder / "hostile.jsonl", [p.replace(b"\n", b" ") for p in payloads])
    run = run_pipeline("--source=file", f"--input={export}", f"--output={folder / 'lake'}")
    assert run.code == 0, run.stderr
    assert "-> OK" in run.stdout
    expected = {}
    for payload in payloads:
        outcome, want = _reference(payload.replace(b"\n", b" "))
        if outcome == "rows":
            for row in want:
                expected.setdefault((row["uuid"], row["target_index"]), row)
    if (folder / "lake").exists() and any((folder / "lake").glob("*/*/*.parquet")):
        got = {(r["uuid"], r["target_index"]) for r in read_lake(folder / "lake")}
        assert set(expected) <= got
    else:
        assert not expected


def _by_place(outcome: tuple, page: bool) -> tuple:
    """A decode outcome with each event's and dead letter's place as its index in the input (a line of a file,
    or an element of a page on line 1), the rest unchanged: how a page and its lines are compared."""
    read, filtered, events, dead, rows, flat_events, flat_dead, duplicates, coerced = outcome

    def place(position) -> int:
        return int(position.rsplit(" ", 1)[1]) + (0 if page else -1)

    events = [(*e[:4], e[5] if page else e[4] - 1, *e[6:]) for e in events]
    dead, flat_dead = ([{**d, "position": place(d["position"])} for d in records] for records in (dead, flat_dead))
    return read, filtered, events, dead, rows, flat_events, flat_dead, duplicates, coerced


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_events(), min_size=1, max_size=6), st.booleans())
def test_a_page_orjson_refuses_is_judged_like_its_lines(payloads, typed):
    """A saved page (or an API page) holding an event orjson refuses is judged event by event, each event
    exactly as the same text on a line of its own: the same events, rows, counts and dead letters."""
    page = b"[" + b",".join(payloads) + b"]"
    try:
        orjson.loads(page)
        assume(False)  # decoded whole: the events carry no text of their own (raw_event is their re-serialisation)
    except orjson.JSONDecodeError:
        pass
    assume(split_array(page) == payloads)  # a cut event breaks the page: one dead letter for all of it
    lines = RawBatch("hypothesis", "line", list(range(1, len(payloads) + 1)), payloads)
    whole = RawBatch("hypothesis", "line", [1], [page])
    decoder = LineDecoder() if typed else None
    assert _by_place(decode_outcome(whole, SELECTION, typed=decoder), page=True) == \
        _by_place(decode_outcome(lines, SELECTION, typed=decoder), page=False)
