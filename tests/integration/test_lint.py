"""The code passes lint (ruff, in a subprocess): style, import order, bugs."""

import subprocess
import sys

from tests.support.helpers import REPO


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
