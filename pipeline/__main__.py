"""``python -m pipeline``: one run, with its options (:mod:`pipeline.main`)."""

from pipeline.main import entry

entry()
