"""The composite transform on Beam's local runner, checked with assert_that."""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.support.helpers import personalize, real_events
from transforms.beam import PersonalEventsToRows
from transforms.records import RawBatch
from transforms.settings import DecodeSettings


def batches(lines, size=4):
    return [RawBatch("mem", "line", list(range(i + 1, i + 1 + len(lines[i:i + size]))), lines[i:i + size])
            for i in range(0, len(lines), size)]


def test_parse_select_flatten_on_real_events():
    real = real_events()
    personal = [personalize(e, i) for i, e in enumerate(real[:12])]
    lines = [json.dumps(e).encode() for e in personal + real[12:20]] + [b"not json", b"[]"]
    expected_rows = []
    for e in personal:
        if e["published"][:4] == "2017" and e["published"][5:10] == "09-31":
            continue  # the impossible date: dead-lettered
        n = len(e["target"]) if isinstance(e.get("target"), list) and e["target"] else 1
        expected_rows += [(e["uuid"], i if isinstance(e.get("target"), list) and e["target"] else None)
                          for i in range(n)]
    with TestPipeline(runner="FnApiRunner") as p:
        rows, dead, _ = p | beam.Create(batches(lines)) | PersonalEventsToRows()
        got = rows | beam.FlatMap(lambda b: [(r["uuid"], r["target_index"]) for r in b.table.to_pylist()])
        assert_that(got, equal_to(expected_rows), label="rows")
        reasons = dead | beam.Map(lambda d: (d["stage"], d["position"]))
        # line 1: the impossible date 2017-09-31; line 21: not JSON (line 9's numeric version is kept as "0")
        assert_that(reasons, equal_to([("validate", "line 1"), ("decode", "line 21")]), label="dead")


def test_selection_option_changes_what_is_kept():
    events = [{"uuid": f"u{i}", "published": "2026-03-01T00:00:00Z", "eventType": t}
              for i, t in enumerate(["user.session.start", "personal.a", "user.session.end"])]
    lines = [json.dumps(e).encode() for e in events]
    with TestPipeline(runner="FnApiRunner") as p:
        rows, _, _ = p | beam.Create(batches(lines)) | PersonalEventsToRows(DecodeSettings("user.session.*"))
        types = rows | beam.Map(lambda b: b.partition.event_type)
        assert_that(types, equal_to(["user.session.start", "user.session.end"]))


def test_whole_batches_carry_the_same_rows_as_per_partition_batches():
    from devtools.eventgen import export_lines
    from transforms.decode import decode_batch
    from transforms.flatten import Flattener
    from transforms.selection import EventTypeSelection

    lines = list(export_lines(400, seed=4, published_sorted=False, types=20, personal_share=0.5))
    expected = []  # per partition, straight from the flattener, no Beam
    for raw in batches(lines, size=200):
        flat = Flattener().flatten(decode_batch(raw, selection=EventTypeSelection.parse("*")).events)
        expected += [(key.path(), r["uuid"], r["target_index"], flat.events[key])
                     for key, table in flat.tables.items() for r in table.to_pylist()]

    def rows_of(element):
        return [(p.partition.path(), r["uuid"], r["target_index"], p.events) for p in element.split()
                for r in p.table.to_pylist()]

    with TestPipeline() as p:
        whole, _, _ = p | beam.Create(batches(lines, size=200)) | PersonalEventsToRows(
            DecodeSettings("*"), whole_batches=True)
        counted = whole | "Count" >> beam.Map(lambda b: (type(b).__name__, len(b.parts) > 5 or b.table.num_rows < 50))
        assert_that(counted, equal_to([("RowBatches", True)] * len(batches(lines, size=200))),
                    label="one element per input batch, many partitions each")
        assert_that(whole | beam.FlatMap(rows_of), equal_to(expected), label="same rows")
    assert len(expected) > 400
