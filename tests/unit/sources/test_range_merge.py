"""A decode process merges several decoded batches: rows regrouped by partition, cross-batch duplicates dropped."""

from __future__ import annotations

import json

from sources.files.worker import BatchDecoder, merge
from transforms.records import RawBatch
from transforms.settings import DecodeSettings

SETTINGS = DecodeSettings("personal.*", raw_event=True, max_payload_bytes=1 << 20)


def _line(uuid: str, day: int, targets: int = 0, kind: str = "personal.a") -> bytes:
    event = {"uuid": uuid, "eventType": kind, "published": f"2026-11-0{day}T10:00:00.000Z",
             "target": [{"id": f"{uuid}-t{i}"} for i in range(targets)]}
    return json.dumps(event).encode()


def _decoded(*batches):
    decoder = BatchDecoder(SETTINGS)
    return [decoder.decode(RawBatch("f", "line", list(range(len(lines))), list(lines))) for lines in batches]


def _rows(merged):
    _counts, _dead, parts, table = merged
    return {key: (table.slice(offset, rows).select(["uuid", "target_id"]).to_pylist(), events)
            for key, offset, rows, events in parts}


def test_merge_keeps_batch_order_and_drops_uuids_an_earlier_batch_holds():
    merged = merge(_decoded(
        [_line("a", 1, 2), _line("b", 2), _line("x", 1, kind="user.y")],
        [_line("c", 1), _line("a", 1, 3), _line("d", 2, 1)],  # "a" again (other targets): dropped whole
        [_line("b", 2), _line("e", 1, 2), _line("b", 1)],  # "b" again in day 2: dropped; in day 1: kept
    ))
    read, filtered, duplicates, _ = merged[0]
    assert (read, filtered, duplicates) == (9, 1, 2)
    rows = _rows(merged)
    day1 = ("2026-11-01", "personal.a")
    day2 = ("2026-11-02", "personal.a")
    assert rows[day1] == ([{"uuid": "a", "target_id": "a-t0"}, {"uuid": "a", "target_id": "a-t1"},
                           {"uuid": "c", "target_id": None},
                           {"uuid": "e", "target_id": "e-t0"}, {"uuid": "e", "target_id": "e-t1"},
                           {"uuid": "b", "target_id": None}], 4)
    assert rows[day2] == ([{"uuid": "b", "target_id": None}, {"uuid": "d", "target_id": "d-t0"}], 2)
    assert merged[3].num_rows == 8


def test_a_batch_whose_rows_are_all_duplicates_adds_nothing():
    merged = merge(_decoded([_line("a", 1, 2)], [_line("a", 1, 2)], [_line("f", 1)]))
    assert merged[0][2] == 1
    assert _rows(merged) == {("2026-11-01", "personal.a"): ([{"uuid": "a", "target_id": "a-t0"},
                                                             {"uuid": "a", "target_id": "a-t1"},
                                                             {"uuid": "f", "target_id": None}], 2)}
