"""A stream's drift records: one file per job, UTC hour and process, holding every window of that hour added up."""

from __future__ import annotations

import json

from common.drift import add_path, type_entry
from sinks.lake.drift import write_window_record

TYPE = "personal.admin.configuration.update"


def _report(events: int, path: str) -> dict:
    report: dict = {}
    entry = type_entry(report, TYPE)
    entry["events"] = events
    add_path(entry, path, events, ["string"], "2026-12-06T10:00:00.000000Z", "2026-12-06T10:00:01.000000Z")
    return report


def test_the_windows_of_an_hour_share_one_file_and_add_up(tmp_path):
    lake = str(tmp_path / "lake")
    for second, path in ((0, "debugContext.debugData.a"), (10, "debugContext.debugData.a"),
                         (20, "debugContext.debugData.b")):
        write_window_record(lake, "job1", f"w20261206T1000{second:02d}Z", _report(2, path))
    write_window_record(lake, "job1", "w20261206T110000Z", _report(5, "debugContext.debugData.a"))

    files = sorted((tmp_path / "lake" / "_drift" / "windows").glob("*.json"))
    assert [f.name.split("-")[:2] for f in files] == [["job1", "20261206T10"], ["job1", "20261206T11"]]
    first, second = (json.loads(f.read_text()) for f in files)
    assert first["windows"] == 3 and first["last_window"] == "w20261206T100020Z"
    assert first["drift"][TYPE]["events"] == 6
    assert {p: s["events"] for p, s in first["drift"][TYPE]["paths"].items()} == {
        "debugContext.debugData.a": 4, "debugContext.debugData.b": 2}
    assert second["windows"] == 1 and second["drift"][TYPE]["events"] == 5
