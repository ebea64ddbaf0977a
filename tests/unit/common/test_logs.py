"""--log_format=json: stderr lines and logging records become one JSON object per line."""

import io
import json
import logging
import sys

from common.logs import LABELS, formatted


def test_printed_lines_and_log_records_become_json_lines(monkeypatch):
    real = io.StringIO()
    monkeypatch.setattr(sys, "stderr", real)
    with formatted("json", "run-1") as context:
        print("window 10:00-10:01: wrote 3 rows", file=sys.stderr)
        context.run_id = "run-2"
        sys.stderr.write("warning: Okta is slow; polling ")
        sys.stderr.write("again in 60 s\nerror: it failed\n")
        print("note: something\n\n", file=sys.stderr, end="")
        logging.getLogger("okta_client").warning("GET %s -> 429", "/api/v1/logs")
        sys.stderr.write("a last line without newline")
    assert sys.stderr is real
    records = [json.loads(line) for line in real.getvalue().splitlines()]
    assert [(r["severity"], r["message"], r["run_id"], r["logger"]) for r in records] == [
        ("INFO", "window 10:00-10:01: wrote 3 rows", "run-1", "pipeline"),
        ("WARNING", "warning: Okta is slow; polling again in 60 s", "run-2", "pipeline"),
        ("ERROR", "error: it failed", "run-2", "pipeline"),
        ("NOTICE", "note: something", "run-2", "pipeline"),
        ("WARNING", "GET /api/v1/logs -> 429", "run-2", "okta_client"),
        ("INFO", "a last line without newline", "run-2", "pipeline"),
    ]
    for record in records:
        assert record[LABELS] == {"run_id": record["run_id"]}
        assert record["time"].endswith("Z") and record["time"][10] == "T"


def test_text_format_leaves_stderr_alone(monkeypatch):
    real = io.StringIO()
    monkeypatch.setattr(sys, "stderr", real)
    with formatted("text", "run-1"):
        print("plain", file=sys.stderr)
    assert real.getvalue() == "plain\n"


def test_library_records_and_warnings_come_out_as_the_runs_own_lines(monkeypatch):
    import warnings

    real, beams = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", real)
    root = logging.getLogger()
    basic = logging.StreamHandler(beams)  # what Beam's logging.basicConfig() installs
    basic.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    monkeypatch.setattr(root, "handlers", [basic])
    with formatted("text", "run-1"):
        logging.getLogger("pyiceberg.table").warning("Commit failed due to a concurrent update, retrying (%s/%s)", 1, 4)
        try:
            raise ValueError("no such file\nsecond line")
        except ValueError:
            logging.getLogger("some.library").error("could not delete %s", "x.parquet", exc_info=True)
        logging.getLogger("some.library").warning("two\nlines")
        warnings.warn("careful", UserWarning, stacklevel=1)
    assert root.handlers == [basic] and beams.getvalue() == ""
    lines = real.getvalue().splitlines()
    assert lines[:4] == [
        "warning: pyiceberg.table: Commit failed due to a concurrent update, retrying (1/4)",
        "error: some.library: could not delete x.parquet (ValueError: no such file)",
        "warning: some.library: two",
        "    lines",
    ]
    assert lines[4].startswith("warning: py.warnings: ") and lines[4].endswith("UserWarning: careful")
    logging.getLogger("pyiceberg.table").warning("after the run")  # Beam's handler again
    assert beams.getvalue() == "WARNING:pyiceberg.table:after the run\n"


def test_library_records_and_warnings_are_json_lines_too(monkeypatch):
    import warnings

    real = io.StringIO()
    monkeypatch.setattr(sys, "stderr", real)
    with formatted("json", "run-1"):
        logging.getLogger("pyiceberg.table").warning("Commit failed due to a concurrent update, retrying")
        warnings.warn("careful", UserWarning, stacklevel=1)
    records = [json.loads(line) for line in real.getvalue().splitlines()]
    assert [(r["severity"], r["logger"], r["run_id"]) for r in records] == [
        ("WARNING", "pyiceberg.table", "run-1"), ("WARNING", "py.warnings", "run-1")]
    assert "UserWarning: careful" in records[1]["message"]
