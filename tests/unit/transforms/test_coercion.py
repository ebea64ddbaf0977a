"""Real-world data that bends: numbers and booleans in documented text fields, through a whole batch run.

Copies of the real public samples (tests/fixtures/real-okta) turned into
personal.* events: the one with ``"version": 0`` is kept as ``"0"`` and
counted as coerced; an object where text belongs is still a dead letter; a
mixed-case ``"Success"`` is stored as sent. The run's counts still balance.
"""

import copy
import re

from tests.support import reference
from tests.support.helpers import dead_letters, personalize, read_lake, real_events, run_pipeline, write_jsonl


def test_a_batch_run_keeps_coerced_events_counts_them_and_balances(tmp_path):
    real = real_events()
    numeric = next(e for e in real if type(e.get("version")) is int)
    plain = next(e for e in real if _kept_as_is(e) and e.get("outcome"))
    events = [personalize(numeric, 0)]
    mixed = personalize(plain, 1)
    mixed["outcome"] = {**mixed["outcome"], "result": "Success"}
    events.append(mixed)
    boolean = personalize(plain, 2)
    boolean["transaction"] = {"id": True}
    events.append(boolean)
    broken = personalize(plain, 3)
    broken["version"] = {"major": 0}
    events.append(broken)
    clean = personalize(plain, 4)
    events.append(copy.deepcopy(clean))
    source = write_jsonl(tmp_path / "in.jsonl", events)
    lake = tmp_path / "lake"

    run = run_pipeline(f"--input={source}", f"--output={lake}")

    assert run.code == 0, run.stderr
    rows = {r["uuid"]: r for r in read_lake(lake)}
    assert rows[events[0]["uuid"]]["version"] == "0"
    assert rows[mixed["uuid"]]["outcome_result"] == "Success"
    assert rows[boolean["uuid"]]["transaction_id"] == "true"
    assert broken["uuid"] not in rows
    [dead] = dead_letters(lake)
    assert dead["uuid"] == broken["uuid"] and "'version' must be a string or null, got object" in dead["error"]
    assert re.search(r"^\s*coerced\s+2\s", run.stdout, re.M), run.stdout
    assert re.search(r"events written\s+4\s", run.stdout), run.stdout
    assert "-> OK" in run.stdout


def _kept_as_is(event: dict) -> bool:
    try:
        reference.expected_rows(event)
    except reference.Reject:
        return False
    return isinstance(event.get("version"), str)
