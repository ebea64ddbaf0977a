"""Replaying exported files: every format, every line exactly once across byte ranges."""

import gzip
import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.files.beam import ReadExportedFiles, ReadRangeFn, SplitFilesFn

_FOUND: list = []


def _keep(items):
    _FOUND.extend(items)


def payloads_of(pattern, **kwargs):
    """Run the source alone and return (origin, position, payload) of every payload."""
    _FOUND.clear()
    with TestPipeline(runner="FnApiRunner") as p:
        out = (p | ReadExportedFiles([pattern], **kwargs)
                 | beam.FlatMap(lambda b: [(b.origin, f"{b.position_kind} {pos}", pay)
                                           for pos, pay in zip(b.positions, b.payloads)]))
        # A module-level matcher is pickled by reference, and the local runner
        # runs it in this process: it can hand the elements back.
        assert_that(out, _keep)
    return list(_FOUND)


def read_all(path, split_bytes, batch_size=3):
    """Split and read one file without a pipeline (fast, deterministic)."""
    ranges = list(SplitFilesFn(split_bytes).process(str(path)))
    reader = ReadRangeFn(batch_size, 1 << 30)
    payloads = []
    for r in ranges:
        for batch in reader.process(r):
            payloads += batch.payloads
    return ranges, payloads


def test_every_line_is_read_once_whatever_the_split(tmp_path):
    lines = [json.dumps({"n": i, "pad": "x" * (i % 37)}).encode() for i in range(500)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for split in (1, 7, 64, 100, 1000, 10 ** 9):
        ranges, payloads = read_all(path, split)
        assert payloads == lines, f"split={split}"
        if split < 1000:
            assert len(ranges) > 1


def test_last_line_without_newline_and_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b'{"a":1}\r\n\n   \n{"a":2}\r\n{"a":3}')
    for split in (1, 5, 10 ** 6):
        _, payloads = read_all(path, split)
        assert payloads == [b'{"a":1}', b'{"a":2}', b'{"a":3}']


def test_gzip_is_read_whole(tmp_path):
    lines = [json.dumps({"n": i}).encode() for i in range(100)]
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    ranges, payloads = read_all(path, 10)
    assert len(ranges) == 1
    assert payloads == lines


def test_pretty_printed_documents_are_read_whole(tmp_path):
    page = [{"uuid": "a"}, {"uuid": "b"}]
    (tmp_path / "page.json").write_text(json.dumps(page, indent=2))
    (tmp_path / "hook.json").write_text(json.dumps({"data": {"events": page}}, indent=2))
    for name in ("page.json", "hook.json"):
        ranges, payloads = read_all(tmp_path / name, 8)
        assert [r.document for r in ranges] == [True]
        assert len(payloads) == 1 and json.loads(payloads[0])


def test_a_bad_first_line_is_not_mistaken_for_a_document(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"broken": \n{"a": 1}\n')
    _, payloads = read_all(path, 10 ** 6)
    assert payloads == [b'{"broken": ', b'{"a": 1}']


def test_positions_name_lines_and_bytes(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(json.dumps({"n": i}).encode() for i in range(4)) + b"\n")
    found = payloads_of(str(path))
    assert sorted(pos for _, pos, _ in found) == ["line 1", "line 2", "line 3", "line 4"]
    found = payloads_of(str(path), split_bytes=10)
    assert {pos.split()[0] for _, pos, _ in found} == {"line", "byte"}
    assert sorted(p for _, _, p in found) == sorted(path.read_bytes().splitlines())


def test_a_glob_mixes_formats(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
    (tmp_path / "b.json").write_text(json.dumps([{"x": 3}], indent=1))
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(b'{"x": 4}\n'))
    found = payloads_of(str(tmp_path / "*"))
    assert len(found) == 4
    assert {o.rsplit("/", 1)[1] for o, _, _ in found} == {"a.jsonl", "b.json", "c.jsonl.gz"}


def test_lines_longer_than_a_block_are_read_whole(tmp_path, monkeypatch):
    import sources.files.lines

    monkeypatch.setattr(sources.files.lines, "BLOCK", 7)  # most lines span several blocks
    lines = [json.dumps({"n": i, "pad": "x" * (i * 3 % 41)}).encode() for i in range(200)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\r\n\n" + b'{"last": true}')
    for split in (1, 13, 500, 10 ** 9):
        _, payloads = read_all(path, split)
        assert payloads == lines + [b'{"last": true}'], f"split={split}"


def _reference_batches(data: bytes, start: int, end, batch_size: int, batch_bytes: int) -> list:
    """What line_batches must yield, found the obvious way: line by line over the whole file."""
    batches, positions, payloads, size = [], [], [], 0
    line_start = 0
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()  # after the last newline: no line
    for number, line in enumerate(pieces, 1):
        here, line_start = line_start, line_start + len(line) + 1
        if here < start or (end is not None and here >= end) or not line or line.isspace():
            continue
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        positions.append(number if start == 0 else here)
        payloads.append(line.rstrip(b"\r"))
        size += len(line)
        if len(payloads) >= batch_size or size >= batch_bytes:
            batches.append((positions, payloads))
            positions, payloads, size = [], [], 0
    if payloads:
        batches.append((positions, payloads))
    return batches


_LINE_TEXTS = [b'{"a":1}', b'{"uuid":"' + b"x" * 40 + b'"}', b"", b"   ", b"\t", b"\r", b'{"b":2}\r', b" {}",
               b"\xef\xbb\xbf{}", b"\x0c", b"x" * 300, b'{"c":"\r"}']


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.sampled_from(_LINE_TEXTS), min_size=0, max_size=60), final_newline=st.booleans(),
       block=st.sampled_from([3, 7, 64, 1000, 1 << 20]), cuts=st.lists(st.integers(0, 4000), max_size=4),
       batch_size=st.integers(1, 7), batch_bytes=st.integers(1, 900))
def test_line_batches_match_the_line_by_line_reference(tmp_path_factory, lines, final_newline, block, cuts,
                                                        batch_size, batch_bytes):
    """Every way to cut a file into ranges, blocks and batches gives the reference's batches, exactly."""
    import sources.files.lines
    from sources.files.lines import line_batches

    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path_factory.mktemp("lines") / "f.jsonl"
    path.write_bytes(data)
    bounds = sorted({0, *(c for c in cuts if c < len(data))}) + [None]
    old, sources.files.lines.BLOCK = sources.files.lines.BLOCK, block
    try:
        for start, end in zip(bounds, bounds[1:]):
            with open(path, "rb") as handle:
                got = [(b.positions, b.payloads)
                       for b in line_batches(handle, str(path), start, end, batch_size, batch_bytes)]
            assert [(list(p), q) for p, q in got] == _reference_batches(data, start, end, batch_size, batch_bytes)
    finally:
        sources.files.lines.BLOCK = old
