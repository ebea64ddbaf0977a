"""The README's generated tables match the code, and the code passes lint."""

import subprocess
import sys

from pipeline.docs import README, render
from tests.helpers import REPO


def test_readme_tables_are_generated_from_the_code():
    text = README.read_text()
    assert text == render(text), "README.md is stale: run `python -m pipeline.docs`"


def test_every_schema_column_is_documented():
    from schemas.fields import COLUMNS, PARTITION_COLUMNS

    text = README.read_text()
    for column in COLUMNS + PARTITION_COLUMNS:
        assert f"| `{column.name}` |" in text


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
