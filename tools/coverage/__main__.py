"""``python -m tools.coverage``: the same command as ``okta-personal-lake coverage``."""

import sys

from tools.coverage.cli import main

sys.exit(main())
