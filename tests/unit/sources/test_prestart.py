"""pipeline.prestart's pre-parse: the ranges the run will cut, and nothing when it is not sure."""

from __future__ import annotations

import pytest
from apache_beam.io.filesystem import CompressionTypes

from pipeline import prestart
from sources.files.beam import SplitFilesFn
from tests.support.helpers import write_jsonl


@pytest.mark.parametrize("suffix", prestart.PLAIN_SUFFIXES)
def test_beam_reads_every_plain_suffix_uncompressed(suffix):
    assert CompressionTypes.detect_compression_type(f"export{suffix}") == CompressionTypes.UNCOMPRESSED
    assert CompressionTypes.detect_compression_type(f"EXPORT{suffix.upper()}") == CompressionTypes.UNCOMPRESSED


@pytest.fixture
def export(tmp_path, monkeypatch):
    monkeypatch.setattr(prestart, "SPLIT_BYTES", 1000)
    lines = [b'{"uuid": "%d", "eventType": "personal.a", "published": "2026-11-01T00:00:00Z"}' % i for i in range(100)]
    return write_jsonl(tmp_path / "export.jsonl", lines)


def test_the_ranges_are_those_the_graph_cuts(export):
    ranges, settings, processes = prestart.planned(["--source=file", f"--input={export}", "--decode_processes=3",
                                                    "--output", "/tmp/lake", "--quiet", "--batch_size=7"])
    assert ranges == sorted(SplitFilesFn(1000).process(str(export))) and len(ranges) > 5
    assert processes == 3 and settings["batch_size"] == 7 and settings["event_types"] == "personal.*"


@pytest.mark.parametrize("flags", [
    ["--help"], ["-h"], ["--streaming"], ["--runner=DirectRunner"], ["--source=okta"], ["--decode_processes=1"],
    ["--batch_size=x"], ["--raw_event=maybe"], ["--typo=1"], ["extra"], ["--input=/no/such/file.jsonl"],
    ["--input=/tmp/*.jsonl"], ["--input=gs://bucket/x.jsonl"],
], ids=lambda f: f[0])
def test_nothing_when_not_sure(export, flags, capsys):
    assert prestart.planned(["--source=file", f"--input={export}", "--decode_processes=2", *flags]) is None
    assert capsys.readouterr() == ("", "")


def test_nothing_for_one_range_or_a_compressed_file(tmp_path, export):
    small = write_jsonl(tmp_path / "small.jsonl", [b'{"uuid": "1"}'])
    packed = write_jsonl(tmp_path / "packed.jsonl.gz", [b'{"uuid": "1"}'] * 500, gz=True)
    assert prestart.planned(["--source=file", f"--input={small}", "--decode_processes=2"]) is None
    assert prestart.planned(["--source=file", f"--input={export},{packed}", "--decode_processes=2"]) is None
