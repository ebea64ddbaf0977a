"""Golden files: these events in, exactly these rows and dead letters out.

Inputs are real public LogEvents (tests/fixtures/real-okta) turned into
personal.* ones, plus hand-made bad lines; tests/golden/README.md says what
each case covers. ``python -m tests.golden.observe`` rewrites the expected
files after an intended change: review that diff row by row.
"""

import json

import pytest

from tests.golden.observe import cases, expected_path, observe
from tests.support.helpers import read_lake, run_pipeline


@pytest.mark.parametrize("case", cases(), ids=lambda p: p.name.split(".")[0])
def test_golden_case(case, tmp_path):
    expected = json.loads(expected_path(case).read_text())
    got = observe(case, tmp_path)
    assert got["summary"] == expected["summary"]
    assert got["dead_letters"] == expected["dead_letters"]
    assert len(got["rows"]) == len(expected["rows"])
    for got_row, want_row in zip(got["rows"], expected["rows"]):
        assert got_row == want_row


def test_raw_event_is_the_original_line(tmp_path):
    case = [c for c in cases() if c.name.startswith("text.")][0]
    lines = {json.loads(line)["uuid"]: line for line in case.read_text().splitlines()}
    lake = tmp_path / "lake"
    assert run_pipeline(f"--input={case}", f"--output={lake}").code == 0
    for row in read_lake(lake):
        assert row["raw_event"] == lines[row["uuid"]]


def test_events_from_containers_keep_their_content(tmp_path):
    case = [c for c in cases() if c.name.startswith("duplicates.")][0]
    lake = tmp_path / "lake"
    assert run_pipeline(f"--input={case}", f"--output={lake}").code == 0
    originals = {}
    for line in case.read_text().splitlines():
        doc = json.loads(line)
        for event in doc if isinstance(doc, list) else doc.get("data", {}).get("events", [doc]):
            originals.setdefault(event["uuid"], event)
    for row in read_lake(lake):
        assert json.loads(row["raw_event"]) == originals[row["uuid"]]
