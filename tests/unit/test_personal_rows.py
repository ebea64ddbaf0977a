"""The composite transform on Beam's local runner, checked with assert_that."""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.helpers import personalize, real_events
from transforms.personal_rows import PersonalEventsToRows
from transforms.records import RawBatch


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
        rows, dead = p | beam.Create(batches(lines)) | PersonalEventsToRows()
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
        rows, _ = p | beam.Create(batches(lines)) | PersonalEventsToRows(event_types="user.session.*")
        types = rows | beam.Map(lambda b: b.partition.event_type)
        assert_that(types, equal_to(["user.session.start", "user.session.end"]))
