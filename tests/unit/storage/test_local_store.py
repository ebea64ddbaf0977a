"""Globs and the conditional create on local disk (the object stores: tests/integration/storage/)."""

from __future__ import annotations

import threading

import pytest

from storage import fs
from storage.paths import glob_regex, join, literal_prefix, object_path


@pytest.mark.parametrize("pattern,path,matches", [
    ("gs://b/lake/*.parquet", "gs://b/lake/a.parquet", True),
    ("gs://b/lake/*.parquet", "gs://b/lake/x/a.parquet", False),  # * stays within a segment
    ("gs://b/lake/**", "gs://b/lake/x/y/a.parquet", True),
    ("s3://b/l/event_date=*/event_type=*/*.parquet", "s3://b/l/event_date=1/event_type=t/p.parquet", True),
    ("s3://b/l/event_date=*/event_type=*/*.parquet", "s3://b/l/event_date=1/event_type=t/p.parquet.staged", False),
    ("s3://b/l/?.json", "s3://b/l/a.json", True),
])
def test_globs_mean_what_beams_meant(pattern, path, matches):
    assert bool(glob_regex(pattern).match(path)) is matches
    assert path.startswith(literal_prefix(pattern))


def test_uris_come_apart_and_join():
    assert object_path("s3://lake/a/b.json") == ("s3", "lake", "a/b.json")
    assert join("gs://b/lake/", "_runs", "x.json") == "gs://b/lake/_runs/x.json"
    assert join("/tmp/lake", "_runs") == "/tmp/lake/_runs"


def test_listing_matches_files_only_at_the_globbed_depth(tmp_path):
    lake = str(tmp_path / "lake")
    for name in ("event_date=1/event_type=a/p.parquet", "event_date=1/event_type=a/p.parquet.staged",
                 "event_date=1/deeper/event_type=a/p.parquet", "_runs/r.json", "top.parquet"):
        fs.write_bytes(fs.join(lake, name), b"x")
    assert fs.list_files(fs.join(lake, "event_date=*", "event_type=*", "*.parquet")) == [
        fs.join(lake, "event_date=1/event_type=a/p.parquet")]
    assert fs.list_files(fs.join(lake, "*.parquet")) == [fs.join(lake, "top.parquet")]
    assert len(fs.list_files(fs.join(lake, "**"))) == 5
    assert fs.list_files(fs.join(lake, "missing", "*.json")) == []
    assert fs.list_files(fs.join(lake, "_runs", "r.json")) == [fs.join(lake, "_runs", "r.json")]


def test_of_many_concurrent_creates_of_one_name_exactly_one_wins_and_its_content_is_whole(tmp_path):
    path = str(tmp_path / "locks" / "1.lease")
    wins = []
    threads = [threading.Thread(target=lambda n=n: wins.append(n) if fs.create_if_absent(path, b"%d" % n * 1000)
                                else None) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [winner] = wins
    assert fs.read_bytes(path) == b"%d" % winner * 1000
    assert [p for p in fs.list_files(str(tmp_path / "locks" / "**"))] == [path]  # no temporary file left
