"""Entry point: ``python -m pipeline [options]`` and the ``okta-personal-lake`` console script.

The command line itself is :mod:`pipeline.cli`; the wiring is :mod:`pipeline.batch` and
:mod:`pipeline.streaming`; the options resolved once are :mod:`pipeline.config`.
"""

from pipeline.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
