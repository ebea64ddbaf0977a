"""Flattening: one row per target, nulls for missing objects, wrong types dead-lettered."""

import datetime as dt
import json

import pyarrow as pa
import pytest

from schemas.fields import COLUMN_NAMES
from tests.support import reference
from tests.support.helpers import personalize, real_events
from transforms.decode import decode_batch
from transforms.flatten import Flattener
from transforms.records import PartitionKey, RawBatch


def parsed(*events):
    lines = [e if isinstance(e, bytes) else json.dumps(e).encode() for e in events]
    result, dead, _, _ = decode_batch(RawBatch("t", "line", list(range(1, len(lines) + 1)), lines))
    assert not dead, dead
    return result


def base(**extra):
    event = {"uuid": "u-1", "published": "2026-03-01T10:05:12.345Z",
             "eventType": "personal.user.app_migration.export", "version": "0", "severity": "INFO",
             "displayMessage": "User exported apps", "actor": {"id": "00u1", "type": "User",
             "alternateId": "ada@example.com", "displayName": "Ada"}}
    event.update(extra)
    return event


def rows(result):
    out = []
    for key, table in sorted(result.tables.items()):
        for row in table.to_pylist():
            out.append({**row, "partition": key.path()})
    return out


def test_one_row_per_target_with_its_index():
    targets = [{"id": f"0oa{i}", "type": "AppInstance", "alternateId": f"app{i}"} for i in range(3)]
    result = Flattener().flatten(parsed(base(target=targets)))
    got = rows(result)
    assert [r["target_index"] for r in got] == [0, 1, 2]
    assert [r["target_id"] for r in got] == ["0oa0", "0oa1", "0oa2"]
    assert {r["actor_alternate_id"] for r in got} == {"ada@example.com"}
    assert result.events == {PartitionKey("2026-03-01", "personal.user.app_migration.export"): 1}


@pytest.mark.parametrize("target", [None, [], "missing"])
def test_no_targets_gives_one_row_with_null_target_columns(target):
    event = base() if target == "missing" else base(target=target)
    got = rows(Flattener().flatten(parsed(event)))
    assert len(got) == 1
    assert got[0]["target_index"] is None
    assert got[0]["target_id"] is got[0]["target_type"] is got[0]["target_alternate_id"] is None


def test_null_and_missing_nested_objects_give_null_columns():
    event = base(actor=None, client={"userAgent": None, "geographicalContext": None, "ipAddress": "1.2.3.4"},
                 securityContext={}, outcome=None)
    got = rows(Flattener().flatten(parsed(event)))[0]
    assert got["actor_id"] is None
    assert got["client_ip_address"] == "1.2.3.4"
    assert got["client_user_agent_raw_user_agent"] is None
    assert got["security_context_is_proxy"] is None
    assert got["outcome_result"] is None


def test_columns_follow_the_schema_in_order_and_type():
    result = Flattener().flatten(parsed(base(securityContext={"isProxy": True})))
    table = next(iter(result.tables.values()))
    assert tuple(table.column_names) == COLUMN_NAMES
    assert table.schema.field("published").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("target_index").type == pa.int32()
    assert table.schema.field("security_context_is_proxy").type == pa.bool_()
    assert table.column("published")[0].as_py() == dt.datetime(2026, 3, 1, 10, 5, 12, 345000,
                                                               tzinfo=dt.timezone.utc)
    assert table.column("security_context_is_proxy")[0].as_py() is True


def test_raw_event_is_optional():
    result = Flattener(raw_event=False).flatten(parsed(base()))
    assert "raw_event" not in next(iter(result.tables.values())).column_names


@pytest.mark.parametrize("change, error", [
    ({"actor": "bob"}, "'actor' must be an object or null, got string"),
    ({"actor": {"id": [7]}}, "'actor.id' must be a string or null, got array"),
    ({"securityContext": {"isProxy": "yes"}}, "'securityContext.isProxy' must be a boolean or null, got string"),
    ({"client": {"userAgent": ["x"]}}, "'client.userAgent' must be an object or null, got array"),
    ({"target": {"id": "x"}}, "'target' must be an array or null, got object"),
    ({"target": [{"id": "x"}, None]}, "'target[1]' must be an object, got null"),
    ({"version": {"major": 0}}, "'version' must be a string or null, got object"),
    ({"version": [0]}, "'version' must be a string or null, got array"),
    ({"outcome": {"result": {"value": "SUCCESS"}}}, "'outcome.result' must be a string or null, got object"),
    ({"target": [{"id": "x"}, {"type": ["User"]}]}, "'target[1].type' must be a string or null, got array"),
    ({"securityContext": {"isProxy": 1}}, "'securityContext.isProxy' must be a boolean or null, got number"),
    ({"version": 0, "actor": {"id": {"x": 1}}}, "'actor.id' must be a string or null, got object"),
    ({"eventType": "personal.bad/type"}, "cannot name a partition"),
])
def test_wrong_types_send_the_event_to_dead_letters(change, error):
    result = Flattener().flatten(parsed(base(**change)))
    assert result.tables == {}
    assert len(result.dead_letters) == 1
    record = result.dead_letters[0]
    assert error in record["error"]
    assert record["stage"] == "flatten"
    assert record["uuid"] == "u-1"
    assert json.loads(record["payload"])["uuid"] == "u-1"


def test_duplicates_inside_a_batch_keep_the_first_copy():
    first, second = base(displayMessage="first"), base(displayMessage="second")
    result = Flattener().flatten(parsed(first, second, base(uuid="u-2")))
    assert result.duplicates == 1
    assert sorted((r["uuid"], r["display_message"]) for r in rows(result)) == [
        ("u-1", "first"), ("u-2", "User exported apps")]


def test_same_uuid_on_two_days_is_two_events():
    result = Flattener().flatten(parsed(base(), base(published="2026-03-02T00:00:00Z")))
    assert result.duplicates == 0
    assert len(result.tables) == 2


def test_spans_locate_each_partitions_rows_in_the_batch_table_without_slicing():
    result = Flattener().flatten(parsed(base(published="2026-03-02T00:00:00Z", target=[{"id": "a"}, {"id": "b"}]),
                                        base(uuid="u-2"), base(uuid="u-3", published="2026-03-02T01:00:00Z")))
    spans = result.tables.spans()
    assert [(key.path(), offset, count) for key, offset, count in spans] == [
        ("event_date=2026-03-01/event_type=personal.user.app_migration.export", 0, 1),
        ("event_date=2026-03-02/event_type=personal.user.app_migration.export", 1, 3)]
    for key, offset, count in spans:
        assert result.table.slice(offset, count).to_pylist() == result.tables[key].to_pylist()
    assert result.table.num_rows == 4 and [t.num_rows for t in result.tables.values()] == [1, 3]


def test_lone_surrogate_is_dead_lettered_and_the_rest_kept():
    bad = b'{"uuid": "u-bad", "published": "2026-03-01T10:05:12Z", "eventType": "personal.x", ' \
          b'"actor": {"id": "\\ud800"}}'
    result = Flattener().flatten(parsed(bad, base()))
    assert [r["uuid"] for r in rows(result)] == ["u-1"]
    assert result.dead_letters[0]["uuid"] == "u-bad"
    assert result.dead_letters[0]["error"].startswith("invalid text")


def test_unicode_and_long_values_survive_intact():
    user_agent = "Mozilla/5.0 " + "ü" * 4096
    event = base(actor={"displayName": "José 🚀 Ñandú", "id": "00u"},
                 client={"userAgent": {"rawUserAgent": user_agent}})
    got = rows(Flattener().flatten(parsed(event)))[0]
    assert got["actor_display_name"] == "José 🚀 Ñandú"
    assert got["client_user_agent_raw_user_agent"] == user_agent


def test_real_events_flatten_like_the_reference():
    """Every real public event, made personal, against the plain reference flattening."""
    events = [personalize(e, i) for i, e in enumerate(real_events())]
    lines = [json.dumps(e).encode() for e in events]
    decoded, dead, _, _ = decode_batch(RawBatch("real", "line", list(range(len(lines))), lines))
    result = Flattener().flatten(decoded)
    got = rows(result)
    expected, rejected = [], 0
    for event, line in zip(events, lines):
        try:
            expected += reference.expected_rows(event, line.decode())
        except reference.Reject:
            rejected += 1
    assert rejected == len(dead) + len(result.dead_letters)
    assert rejected >= 3  # the impossible date, "redacted", the numeric version ...
    key = lambda r: (r["uuid"], -1 if r["target_index"] is None else r["target_index"])
    for got_row, want in zip(sorted(got, key=key), sorted(expected, key=key)):
        partition = f"event_date={want.pop('event_date')}/event_type={want.pop('event_type')}"
        assert got_row.pop("partition") == partition
        assert got_row == want
    assert len(got) == len(expected)


@pytest.mark.parametrize("change, column, text", [
    ({"version": 0}, "version", "0"),
    ({"version": 1.5}, "version", "1.5"),
    ({"actor": {"id": 12345678901234567890, "type": "User"}}, "actor_id", "12345678901234567890"),
    ({"securityContext": {"isProxy": True}, "outcome": {"result": True}}, "outcome_result", "true"),
    ({"transaction": {"id": False}}, "transaction_id", "false"),
    ({"target": [{"id": 7, "type": "User"}]}, "target_id", "7"),
])
def test_numbers_and_booleans_in_text_fields_are_kept_as_their_json_text(change, column, text):
    result = Flattener().flatten(parsed(base(**change)))
    assert result.dead_letters == []
    assert result.coerced == 1
    [row] = rows(result)
    assert row[column] == text
    assert json.loads(row["raw_event"]) == base(**change)  # the original stays as sent


def test_clean_events_are_not_counted_as_coerced():
    result = Flattener().flatten(parsed(base(), base(uuid="u-2", version=0)))
    assert result.coerced == 1
    assert len(rows(result)) == 2


def test_a_coerced_duplicate_is_counted_once():
    result = Flattener().flatten(parsed(base(version=0), base(version=0)))
    assert (result.coerced, result.duplicates) == (1, 1)


def test_mixed_case_values_are_kept_as_sent():
    [row] = rows(Flattener().flatten(parsed(base(outcome={"result": "Success"}, severity="Info"))))
    assert (row["outcome_result"], row["severity"]) == ("Success", "Info")


def test_the_real_numeric_version_event_is_kept_with_version_text():
    """The real public sample (Okta's docs via YAML) with ``version: 0``, made personal: a row, not a dead letter."""
    numeric = [e for e in real_events() if e.get("version") == 0 and not isinstance(e.get("version"), bool)]
    assert numeric, "the fixture holds a numeric version"
    events = [personalize(e, i) for i, e in enumerate(numeric)]
    result = Flattener().flatten(parsed(*events))
    assert result.dead_letters == []
    assert result.coerced == len(events)
    assert {r["version"] for r in rows(result)} == {"0"}


def test_a_coerced_event_survives_the_batch_coder_between_stages():
    """ParsedEvent.prepared travels pickled from ParseEvents to FlattenTargets (transforms/beam.py)."""
    import pickle

    from transforms.flatten import Coerced

    line = json.dumps(base(version=0)).encode()
    [event] = decode_batch(RawBatch("t", "line", [1], [line]), prepare=Flattener().prepare).events
    assert type(event.prepared) is Coerced and event.prepared.fields == (("version", "number"),)
    copied = pickle.loads(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(copied.prepared) is Coerced and copied.prepared == event.prepared
    assert copied.prepared.fields == (("version", "number"),)
    assert Flattener().flatten([copied]).coerced == 1
