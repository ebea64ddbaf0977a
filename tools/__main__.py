"""``python -m tools COMMAND [ARGS]``: the ``okta-personal-lake`` command (:mod:`tools.cli`) without installing it."""

import sys

from tools.cli import main

sys.exit(main())
