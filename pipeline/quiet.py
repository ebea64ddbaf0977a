"""Keep Beam's worker tracebacks off the terminal: a failed run is reported by ``main`` as one line.

The portable runner's SDK worker prints a failing bundle's whole traceback
straight to ``sys.stderr`` (not through ``logging``), once per retry. With
``--verbose`` nothing is filtered.
"""

from __future__ import annotations

import contextlib
import sys


class _DropWorkerTracebacks:
    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith("Traceback (most recent call last)") and "apache_beam/runners" in text:
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def beam_tracebacks_hidden(enabled: bool = True):
    if not enabled:
        yield
        return
    original = sys.stderr
    sys.stderr = _DropWorkerTracebacks(original)
    try:
        yield
    finally:
        sys.stderr = original
