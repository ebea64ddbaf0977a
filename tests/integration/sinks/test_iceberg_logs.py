"""pyiceberg's own log lines during a run come out in the run's format, text or JSON, never raw.

A real batch run whose Iceberg commit meets another writer's commit: pyiceberg logs "Commit failed due to
a concurrent update, retrying" (its own retry, which the run's commit then refuses and re-checks).
"""

from __future__ import annotations

import json

import pytest

from sinks.iceberg import files as iceberg_files
from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.commit import commit_rows
from sinks.iceberg.settings import IcebergTarget
from tests.support.helpers import run_pipeline, write_jsonl
from tests.support.iceberg import make_rows
from tests.support.okta import make_events

RETRY = "Commit failed due to a concurrent update, retrying"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_pyicebergs_retry_warning_during_a_run_is_in_the_runs_format(tmp_path, monkeypatch, log_format):
    import datetime as dt

    lake = tmp_path / "lake"
    target = IcebergTarget("okta.events", "sqlite", None, str(lake / "_iceberg"))
    events = make_events(20, dt.datetime(2026, 11, 5, tzinfo=dt.timezone.utc), dt.timedelta(minutes=3),
                         personal_every=1)
    source = write_jsonl(tmp_path / "in" / "a.jsonl", events)
    real, calls = iceberg_files._committed_by, []

    def then_someone_commits(table, commit_id, since):  # the run's commit step has loaded the table
        if not calls:
            calls.append(1)
            commit_rows(load_catalog(target), target, make_rows(range(1000, 1004)), {"run-id": "other"})
        return real(table, commit_id, since)

    monkeypatch.setattr(iceberg_files, "_committed_by", then_someone_commits)
    run = run_pipeline("--input", str(source), "--output", str(lake), "--iceberg_table=okta.events",
                       f"--log_format={log_format}", "--run_id=logged")
    assert run.code == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    if log_format == "text":
        retries = [line for line in lines if RETRY in line]
        assert retries and all(line.startswith(f"warning: pyiceberg.table: {RETRY}") for line in retries), lines
    else:
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        retries = [r for r in records if RETRY in r["message"]]
        assert retries and all((r["severity"], r["logger"], r["run_id"]) == ("WARNING", "pyiceberg.table", "logged")
                               for r in retries), records
