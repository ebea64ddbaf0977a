"""The run's entry: :func:`main` (the command line) and :func:`exit_without_teardown`.

``python -m pipeline`` calls :func:`entry`: both, in turn; ``okta-personal-lake run`` (:mod:`tools.cli`) too.

The command line itself is :mod:`pipeline.cli`; the wiring is :mod:`pipeline.batch` and
:mod:`pipeline.streaming`; the options resolved once are :mod:`pipeline.config`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

from pipeline.cli import main

__all__ = ["entry", "exit_without_teardown", "main"]


def exit_without_teardown(code: int) -> None:
    """Exit with ``code`` as ``sys.exit`` would, minus the interpreter's teardown.

    Once a run is over, freeing every module and object one by one only delays the exit: ~0.3 s
    after a million-event replay (Beam alone is hundreds of modules), measured. So: logging shut
    down, the atexit handlers run, output flushed, then ``os._exit``. When a non-daemon thread still
    runs (an ordinary exit would wait for it), or this Python has no way to run the atexit handlers,
    it is an ordinary ``sys.exit``. Daemon threads (the progress printer) end either way.
    """
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    me = threading.current_thread()
    if run_exit_handlers is None or any(t is not me and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    logging.shutdown()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a pipe the reader left
            pass
    os._exit(code if isinstance(code, int) else 1)


def entry() -> None:
    """Run with this process's command line, then exit with the run's code."""
    exit_without_teardown(main())


if __name__ == "__main__":
    entry()
