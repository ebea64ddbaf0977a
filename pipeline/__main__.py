"""``python -m pipeline``: see :mod:`pipeline.main` (decoding may start first: :mod:`pipeline.prestart`)."""

import sys

from pipeline.prestart import main

sys.exit(main())
