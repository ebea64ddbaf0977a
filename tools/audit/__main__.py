"""``python -m tools.audit``: the same command as ``okta-personal-lake audit`` (``--repair`` included)."""

import sys

from tools.cli import main

sys.exit(main(["audit", *sys.argv[1:]]))
