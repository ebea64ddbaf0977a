"""``python -m pipeline``: see :mod:`pipeline.main`."""

import sys

from pipeline.main import main

sys.exit(main())
