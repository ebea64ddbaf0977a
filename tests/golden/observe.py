"""Run the pipeline on a golden input and describe what it produced, comparably.

``python -m tests.golden.observe`` rewrites every ``*.expected.json`` from
the current code: review the diff line by line before committing it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.support.helpers import GOLDEN, dead_letters, read_lake, run_pipeline

SUMMARY = ("events read", "events written", "filtered out", "duplicates", "dead letters",
           "rows written")


def observe(input_path: Path, workdir: Path) -> dict:
    lake = workdir / "lake"
    run = run_pipeline(f"--input={input_path}", f"--output={lake}")
    assert run.code == 0, run.stderr + run.stdout
    rows = []
    for row in read_lake(lake):
        row["published"] = row["published"].isoformat()
        row.pop("raw_event")
        rows.append(row)
    dead = sorted(
        ({k: d.get(k) for k in ("position", "stage", "error", "uuid")} for d in dead_letters(lake)),
        key=lambda d: (int(d["position"].split()[1]), d["position"]),
    )
    return {"summary": {label: run.count(label) for label in SUMMARY}, "rows": rows,
            "dead_letters": dead}


def cases() -> list[Path]:
    return sorted(GOLDEN.glob("*.input.jsonl"))


def expected_path(input_path: Path) -> Path:
    return input_path.with_name(input_path.name.replace(".input.jsonl", ".expected.json"))


def main() -> int:
    for case in cases():
        with tempfile.TemporaryDirectory() as tmp:
            result = observe(case, Path(tmp))
        expected_path(case).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {expected_path(case).name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
