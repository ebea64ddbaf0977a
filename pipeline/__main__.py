"""``python -m pipeline``: see :mod:`pipeline.main`."""

from pipeline.main import run

run()
