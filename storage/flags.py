"""The storage flags a tool takes besides its own: Beam's S3 options (``--s3_endpoint_url``, keys, region).

A tool (coverage, maintenance) reads a lake or an Iceberg warehouse where a run wrote it, so it
reaches an ``s3://`` store with the options the run had; ``gs://`` follows
``STORAGE_EMULATOR_HOST`` and needs none. The flag names are the ones Beam's ``S3Options``
declares (:data:`storage.clients.S3_FLAGS`), so a misspelt one is refused (with a suggestion)
instead of being silently ignored.
An error never repeats a flag's value: it may be a secret key.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable

from storage.clients import S3_FLAGS


class _S3Flags(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def split_storage_flags(argv: Iterable[str], known: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """``(flags, problems)``: the S3 options among ``argv`` (what a tool's own parser left), normalised to
    ``--name=value``, and one message per other argument. ``known`` (the tool's own flags) widens the
    suggestions for a misspelt flag."""
    parser = _S3Flags(add_help=False, allow_abbrev=False)
    for name, switch in S3_FLAGS:
        parser.add_argument(f"--{name}", action="store_true" if switch else "store")
    names = [o for action in parser._actions for o in action.option_strings]  # noqa: SLF001
    try:
        values, rest = parser.parse_known_args(list(argv))
    except ValueError as exc:  # argparse's own message, e.g. a flag without its value
        return [], [str(exc)]
    problems, after_flag = [], False
    for arg in rest:
        if not arg.startswith("-"):
            if not after_flag:  # after an unknown flag it is that flag's value: not repeated (a secret, maybe)
                problems.append(f"unexpected argument {arg!r}")
            after_flag = False
            continue
        name = arg.split("=", 1)[0]
        after_flag = "=" not in arg
        close = difflib.get_close_matches(name, names + list(known), n=1)
        problems.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    flags = [f"--{name}" if value is True else f"--{name}={value}"
             for name, value in vars(values).items() if value not in (None, False)]
    return flags, problems


def use_storage_flags(argv: Iterable[str], known: Iterable[str] = ()) -> list[str]:
    """Hand the S3 options among ``argv`` to this process's filesystems (:func:`storage.fs.configure`);
    return the problems with the other arguments instead (then nothing is configured)."""
    flags, problems = split_storage_flags(argv, known)
    if problems:
        return problems
    if flags:
        from storage import fs

        fs.configure(flags)
    return []
