"""One corpus of hostile events through every source: the same rows and the same dead letters everywhere.

The corpus (:mod:`tests.support.hostile`: lone surrogates, invalid UTF-8, ``NaN``, ``1e400``, nesting past
1,024 levels, duplicate keys, wrong types...) goes in as the same bytes: a JSON Lines file (the reference), a
saved ``/api/v1/logs`` page, compact and pretty-printed, the local System Log server's pages (a backfill and a
streaming tail), and Pub/Sub messages (one event each, and the page as one message). Every run exits 0 without
asking for a page twice; each damaged event is one dead letter with its own text, every other event is in the
lake (read with DuckDB, as the README does).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from tests.support.helpers import dead_letters, run_pipeline, write_jsonl
from tests.support.hostile import corpus, page, pretty_page
from tests.support.okta import iso, recent_start

START = recent_start(hours_back=3)
ENTRIES = corpus(START)
LINES = [entry.line for entry in ENTRIES]


def rows(lake: Path, *exclude: str) -> list[tuple]:
    """Every row of the lake but its okta_org (the API knows the org, the files and messages here do not)."""
    columns = ", ".join(("okta_org",) + exclude)
    return duckdb.sql(f"SELECT * EXCLUDE ({columns}) FROM read_parquet('{lake}/event_date=*/event_type=*/*.parquet', "
                      "hive_partitioning=true) ORDER BY uuid, target_index NULLS FIRST").fetchall()


def dead(lake: Path) -> Counter:
    """The dead letters by what they say (their origin and position differ from source to source)."""
    return Counter((d["stage"], d["error"], d["payload"], d.get("uuid"), d.get("event_type"))
                   for d in dead_letters(lake))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The lake of the corpus as a JSON Lines file: every damaged event one dead letter of its stage, the others
    kept."""
    folder = tmp_path_factory.mktemp("reference")
    lake = folder / "lake"
    run = run_pipeline("--source=file", f"--input={write_jsonl(folder / 'events.jsonl', LINES)}", f"--output={lake}")
    assert run.code == 0, run.stderr
    fates = [(d["uuid"], d["stage"]) for d in dead_letters(lake)]
    assert sorted(fates) == sorted((e.uuid, e.fate) for e in ENTRIES if e.fate not in ("kept", "filtered"))
    assert {row[0] for row in rows(lake)} == {e.uuid for e in ENTRIES if e.fate == "kept"}
    return lake


def test_a_saved_page_is_judged_event_by_event(tmp_path, reference):
    for name, text in (("page.json", page(ENTRIES)), ("pretty.json", pretty_page(ENTRIES))):
        (tmp_path / name).write_bytes(text)
        lake = tmp_path / f"lake-{name}"
        run = run_pipeline("--source=file", f"--input={tmp_path / name}", f"--output={lake}")
        assert run.code == 0, run.stderr
        assert (run.count("events read"), run.count("dead letters")) == (len(ENTRIES), sum(dead(reference).values()))
        assert dead(lake) == dead(reference)
        if name == "page.json":
            assert rows(lake) == rows(reference)
        else:  # the clean events' raw_event is their pretty-printed text
            assert rows(lake, "raw_event") == rows(reference, "raw_event")


def test_the_api_backfill_and_tail_keep_the_page_and_dead_letter_the_bad_events(okta_server, okta_token_env,
                                                                                tmp_path, reference):
    server = okta_server(LINES)
    assert server.event_count == len(ENTRIES)  # served as stored, damaged ones too
    until = START + len(ENTRIES) * dt.timedelta(seconds=1) + dt.timedelta(minutes=1)
    backfill = run_pipeline("--source=okta", f"--okta_org_url={server.url}", f"--since={iso(START)}",
                            f"--until={iso(until)}", f"--output={tmp_path / 'backfill'}")
    assert backfill.code == 0, backfill.stderr
    # Every answer was a 200 and no page was asked for twice.
    paths = [record.path for record in server.stats.records]
    assert server.stats.by_status == {200: len(paths)} and len(set(paths)) == len(paths)
    tail = run_pipeline("--streaming", "--source=okta", f"--okta_org_url={server.url}",
                        f"--state={tmp_path / 'cursor.json'}", f"--output={tmp_path / 'tail'}", "--window=1s",
                        "--poll_interval=1s", "--lookback=1d", "--stop_after=5s")
    assert tail.code == 0, tail.stderr
    for lake in (tmp_path / "backfill", tmp_path / "tail"):
        assert rows(lake) == rows(reference)
        assert dead(lake) == dead(reference)
    assert set(server.stats.by_status) == {200}


@pytest.mark.parametrize("form", ["events", "page"])
def test_pubsub_messages_of_one_event_or_of_a_page(pubsub_emulator, tmp_path, reference, monkeypatch, form):
    for key, value in pubsub_emulator.env.items():
        monkeypatch.setenv(key, value)
    publish, subscription = pubsub_emulator.topic_and_subscription(f"okta-hostile-{form}")
    for message in (LINES if form == "events" else [page(ENTRIES)]):
        publish(message)
    lake = tmp_path / "lake"
    run = run_pipeline("--streaming", "--source=pubsub", f"--subscription={subscription}", f"--output={lake}",
                       "--window=1s", "--stop_after=4s")
    assert run.code == 0, run.stderr
    assert rows(lake) == rows(reference)
    assert dead(lake) == dead(reference)
