"""--log_format=json: stderr lines and logging records become one JSON object per line."""

import io
import json
import logging
import sys

from pipeline.logs import LABELS, formatted


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
