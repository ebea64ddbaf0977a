"""``okta-personal-lake``, one command: a replay run, then the lake's report, its coverage and the Iceberg table's
upkeep, each in a fresh process as a user types them; and the script setup.py installs is that command."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.support.helpers import REPO, personalize, read_lake, real_events, run_command, write_jsonl


def test_the_installed_script_is_the_command():
    [(name, module, function)] = re.findall(r'"([\w-]+)=([\w.]+):(\w+)"', (REPO / "setup.py").read_text())
    assert (name, module, function) == ("okta-personal-lake", "tools.cli", "main")
    # What the script pip writes runs:
    script = f"import sys; from {module} import {function}; sys.exit({function}())"
    done = subprocess.run([sys.executable, "-c", script, "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: okta-personal-lake")
    assert set(re.findall(r"^    (\w+) ", done.stdout, re.M)) == {"run", "coverage", "audit", "maintain", "report"}


def test_a_replay_then_its_report_coverage_and_upkeep_through_one_command(tmp_path):
    events = [personalize(event, i) for i, event in enumerate(real_events())]
    export = write_jsonl(tmp_path / "export.jsonl", events)
    lake = tmp_path / "lake"

    run = run_command("run", "--source=file", f"--input={export}", f"--output={lake}",
                      "--iceberg_table=okta.events", "--quiet")
    assert run.code == 0, run.stderr
    assert run.count("events read") == len(events)
    rows = read_lake(lake)
    assert len(rows) == run.count("rows written") and len({row["uuid"] for row in rows}) == run.count("events written")

    report = run_command("report", str(lake))
    assert report.code == 0, report.stderr
    assert report.stdout.startswith(f"DuckDB over {lake}/event_date=*/event_type=*/*.parquet:")
    table = report.stdout.splitlines()
    header = table.index(next(line for line in table if line.startswith("okta_org")))
    counted = [line.split() for line in table[header + 1:table.index("", header)]]
    assert sum(int(line[-3]) for line in counted) == len(rows)  # the rows column, per type and day
    [dead] = [line for line in table if line.startswith("dead-letter records in ")]
    assert dead.endswith(f": {run.count('dead letters')}")
    assert "schema drift of the kept events" in report.stdout  # what the run saw beyond the schema

    coverage = run_command("coverage", f"--output={lake}", "--format=json")
    assert coverage.code == 0, coverage.stderr
    result = json.loads(coverage.stdout)
    assert result["orgs"] == [] and result["runs_without_org"] == 1  # a file replay names no Okta org

    upkeep = run_command("maintain", f"--output={lake}", "--iceberg_table=okta.events")
    assert upkeep.code == 0, upkeep.stderr
    assert upkeep.stdout.startswith("okta.events: ")

    refused = run_command("maintain", f"--output={lake}", "--iceberg_table=okta.events", "--retention=soon")
    assert refused.code == 2 and "error: --retention must be a duration" in refused.stderr
