"""A run's configuration is resolved once: the orgs file, a credential file, the durations, read or parsed once.

A backfill of two orgs (two local System Log servers, one token in a file) runs in this process while every
read of a file through the storage layer and every duration parse is counted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from tests.support.helpers import run_pipeline
from tests.support.okta import TOKEN, expected_row_keys, iso, make_events, recent_start


@pytest.fixture
def counted(monkeypatch):
    """Counts of file reads (by path) and of duration parses (by option name), for the code under test."""
    from common import durations
    from storage import fs

    reads, parses = Counter(), Counter()
    read_bytes, parse_duration = fs.read_bytes, durations.parse_duration

    def counting_read(uri: str) -> bytes:
        reads[str(uri)] += 1
        return read_bytes(uri)

    def counting_parse(text: str, name: str):
        parses[name] += 1
        return parse_duration(text, name)

    monkeypatch.setattr(fs, "read_bytes", counting_read)
    monkeypatch.setattr(durations, "parse_duration", counting_parse)
    monkeypatch.setattr("sources.okta.settings.parse_duration", counting_parse)  # imported by name there
    return reads, parses


def test_a_two_org_backfill_reads_its_orgs_file_and_token_file_once(okta_server, tmp_path, monkeypatch, counted):
    reads, parses = counted
    start = recent_start(2)
    events = {name: make_events(40, start, dt.timedelta(minutes=1), salt=i + 1) for i, name in enumerate("ab")}
    servers = {name: okta_server(events[name]) for name in "ab"}
    token = tmp_path / "token-a"
    token.write_text(TOKEN)
    monkeypatch.setenv("TOKEN_B", TOKEN)
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps({"orgs": [{"url": servers["a"].url, "token_file": str(token)},
                                         {"url": servers["b"].url, "token_env": "TOKEN_B"}]}))
    lake = tmp_path / "lake"

    run = run_pipeline("--source=okta", f"--orgs={orgs}", f"--since={iso(start)}",
                       f"--until={iso(start + dt.timedelta(hours=1))}", "--slice=20m", f"--output={lake}")

    assert run.code == 0, run.stderr
    assert reads[str(orgs)] == 1, reads
    assert reads[str(token)] == 1, reads
    assert parses["--slice"] == 1 and parses["--lookback"] == 1, parses
    assert run.count("rows written") == sum(sum(expected_row_keys(events[n]).values()) for n in "ab")
