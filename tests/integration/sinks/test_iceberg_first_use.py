"""Runs that start together against a brand-new catalog: every one exits 0 and the table holds each row once.

pyiceberg's SQL catalog creates its own tables on first use (check, then create); four runs opening an
empty PostgreSQL database at once used to fail (``DuplicateTable``, or a ``pg_type`` unique violation).

- Rounds of four real pipeline runs on a fresh database, nothing created beforehand, with overlapping
  inputs, all released at the same moment once imported (:mod:`tests.support.pipeline_at`). A round
  costs about 10 s on two cores, so the suite runs four; ``pytest --first-use-rounds=20`` runs the twenty
  of the issue.
- The interleaving itself, made certain on each database: another opener is creating the tables (and
  holds what it holds while doing so) when this process opens the catalog.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.settings import IcebergTarget
from tests.support.helpers import REPO, write_jsonl
from tests.support.okta import expected_row_keys, make_events

RUNS = 4
START_AFTER_S = 5.0  # about the time four processes take to import Beam and pyiceberg on two cores


def _inputs(folder) -> tuple[list, list[dict]]:
    """Four overlapping inputs: run w reads events [5w, 5w + 20)."""
    events = make_events(5 * (RUNS - 1) + 20, dt.datetime(2026, 11, 5, tzinfo=dt.timezone.utc),
                         dt.timedelta(minutes=7), personal_every=1)
    return [write_jsonl(folder / f"w{w}.jsonl", events[5 * w:5 * w + 20]) for w in range(RUNS)], events


def _round(tmp_path, name: str, inputs, catalog_options: list[str]) -> list[tuple[int, str]]:
    """The four runs, released together; each run writes its own lake and commits to the one table."""
    at = time.time() + START_AFTER_S
    runs = [subprocess.Popen([sys.executable, "-m", "tests.support.pipeline_at", str(at), "--quiet",
                              "--input", str(source), "--output", str(tmp_path / f"{name}-lake{w}"),
                              "--iceberg_table=okta.events", f"--run_id={name}-w{w}", *catalog_options],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w, source in enumerate(inputs)]
    return [(run.wait(timeout=300), run.communicate()[1]) for run in runs]


def _assert_exact(target: IcebergTarget, events: list[dict], name: str) -> None:
    table = load_catalog(target).load_table(target.table)
    arrow = table.scan(selected_fields=("uuid", "target_index")).to_arrow()
    got = sorted(zip(arrow.column("uuid").to_pylist(), arrow.column("target_index").to_pylist()),
                 key=lambda k: (k[0], -1 if k[1] is None else k[1]))
    want = sorted(expected_row_keys(events), key=lambda k: (k[0], -1 if k[1] is None else k[1]))
    assert got == want, f"round {name}: {len(got)} rows, {len(set(got))} distinct, {len(want)} expected"


def test_four_runs_on_a_fresh_postgresql_catalog_all_succeed_with_each_row_once(postgres, tmp_path, request):
    inputs, events = _inputs(tmp_path / "in")
    rounds = request.config.getoption("first_use_rounds")
    for n in range(rounds):
        name = f"pg{n}"
        database = f"first_use_{os.getpid()}_{n}"
        postgres.psql(f"CREATE DATABASE {database};")
        target = IcebergTarget("okta.events", "sql", postgres.get_uri(database), str(tmp_path / f"{name}-wh"))
        results = _round(tmp_path, name, inputs, ["--iceberg_catalog=sql", f"--iceberg_catalog_uri={target.uri}",
                                                  f"--iceberg_warehouse={target.warehouse}"])
        failed = [err.strip().splitlines()[-1:] for code, err in results if code != 0]
        assert not failed, f"round {n} of {rounds}: {len(failed)} of {RUNS} runs failed: {failed}"
        _assert_exact(target, events, name)


def test_four_runs_on_a_fresh_sqlite_catalog_file_all_succeed_with_each_row_once(tmp_path):
    inputs, events = _inputs(tmp_path / "in")
    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "wh"))  # catalog file wh/catalog.db
    results = _round(tmp_path, "sqlite", inputs, [f"--iceberg_warehouse={target.warehouse}"])
    failed = [err.strip().splitlines()[-1:] for code, err in results if code != 0]
    assert not failed, f"{len(failed)} of {RUNS} runs failed: {failed}"
    _assert_exact(target, events, "sqlite")


def test_a_sqlite_catalog_opened_while_another_process_creates_its_tables_waits_and_creates_nothing(tmp_path):
    """The interleaving that broke a check-then-create, made certain: another writer holds SQLite's write
    lock, and creates the tables, while this process opens the new catalog."""
    from pyiceberg.catalog.sql import SqlCatalogBaseTable
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import Engine

    target = IcebergTarget("okta.events", "sqlite", None, str(tmp_path / "wh"))
    os.makedirs(target.warehouse)
    other = create_engine(f"sqlite:///{tmp_path / 'wh' / 'catalog.db'}")
    opening, outcome = threading.Event(), {}

    def note_ddl(conn, cursor, statement, *args):  # the opener is about to take the lock, or to create
        if conn.engine is not other and statement.lstrip().upper().startswith(("BEGIN IMMEDIATE", "CREATE TABLE")):
            opening.set()

    def open_catalog():
        try:
            outcome["catalog"] = load_catalog(target)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    event.listen(Engine, "before_cursor_execute", note_ddl)
    try:
        with other.connect() as holder:
            holder.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite's write lock, as another opener takes it
            opener = threading.Thread(target=open_catalog)
            opener.start()
            assert opening.wait(60), "the opener never tried to create the catalog tables"
            time.sleep(0.5)  # let its statement reach SQLite's busy wait (the test holds either way)
            SqlCatalogBaseTable.metadata.create_all(holder)
            holder.commit()
            opener.join(60)
    finally:
        event.remove(Engine, "before_cursor_execute", note_ddl)
        other.dispose()
    assert "error" not in outcome, outcome.get("error")
    outcome["catalog"].create_namespace("okta")  # the catalog works on the tables the other process made
    assert outcome["catalog"].list_namespaces() == [("okta",)]


def test_a_postgresql_catalog_opened_while_another_run_creates_its_tables_waits_and_creates_nothing(postgres):
    """Another run holds the catalog's creation lock and has created the tables, not committed yet, when this
    process opens the catalog: it waits for that run instead of creating them a second time."""
    from pyiceberg.catalog.sql import SqlCatalogBaseTable
    from sqlalchemy import create_engine, text

    from sinks.iceberg.catalog import CATALOG_DDL_LOCK

    database = f"first_use_{os.getpid()}_interleaved"
    postgres.psql(f"CREATE DATABASE {database};")
    target = IcebergTarget("okta.events", "sql", postgres.get_uri(database), "/unused")
    other = create_engine(postgres.get_uri(database).replace("postgresql://", "postgresql+psycopg2://"))
    outcome = {}

    def open_catalog():
        try:
            outcome["catalog"] = load_catalog(target)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock'")
    try:
        with other.connect() as holder, other.connect() as watcher:
            holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_DDL_LOCK})
            SqlCatalogBaseTable.metadata.create_all(holder)  # not committed yet
            opener = threading.Thread(target=open_catalog)
            opener.start()
            deadline = time.monotonic() + 30
            while opener.is_alive() and time.monotonic() < deadline:
                blocked = watcher.execute(waiting).scalar()
                watcher.rollback()  # pg_stat_activity is read once per transaction
                if blocked:
                    break
                time.sleep(0.05)
            holder.commit()
            opener.join(60)
    finally:
        other.dispose()
    assert "error" not in outcome, outcome.get("error")
    outcome["catalog"].create_namespace("okta")
    assert outcome["catalog"].list_namespaces() == [("okta",)]
