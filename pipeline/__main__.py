"""``python -m pipeline``: see :mod:`pipeline.main` (decoding may start first: :mod:`pipeline.prestart`)."""

from pipeline.prestart import main

main()
