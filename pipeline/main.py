"""The run's entry: :func:`main` (the command line) and :func:`exit_without_collecting`.

``python -m pipeline`` calls :func:`entry`: both, in turn; ``okta-personal-lake run`` (:mod:`tools.cli`) too.

The command line itself is :mod:`pipeline.cli`; the wiring is :mod:`pipeline.batch` and
:mod:`pipeline.streaming`; the options resolved once are :mod:`pipeline.config`.
"""

from __future__ import annotations

import gc
import sys

from pipeline.cli import main

__all__ = ["entry", "exit_without_collecting", "main"]


def exit_without_collecting(code: int) -> None:
    """``sys.exit(code)``, with every object still alive frozen first (``gc.freeze``).

    An interpreter's teardown runs the cyclic garbage collector over every tracked object, more
    than once: after a million-event replay (Beam alone is hundreds of modules) that was ~0.3 s of
    an ~8 s run, measured (bench/RESULTS.md, 2026-12-06). Frozen objects are left out of those
    collections; the rest of an ordinary exit happens as always: non-daemon threads are waited for,
    the atexit handlers run, output is flushed. What is skipped: finalizing objects that only a
    reference cycle keeps alive, as the process ends; the run's files are written and closed by then.
    """
    gc.freeze()
    sys.exit(code)


def entry() -> None:
    """Run with this process's command line, then exit with the run's code."""
    exit_without_collecting(main())


if __name__ == "__main__":
    entry()
