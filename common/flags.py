"""How a component declares its command-line flags: the argparse helpers every settings module shares.

Each component's ``settings.py`` has ``add_flags(parser)`` (its argparse group) and
``resolve(options, problems, ...)`` (its checks, one line per problem appended to
``problems``, and its frozen settings); :mod:`pipeline.options` and
:mod:`pipeline.config` compose them. Flags that take a yes/no accept ``--flag``,
``--flag=true`` and ``--flag=false`` (Flex Templates pass every parameter as ``--name=value``).
"""

from __future__ import annotations

import argparse


def str2bool(value) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def bool_flag(parser, name: str, default: bool, help: str) -> None:
    parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)


def comma_list(values: list[str] | str | None) -> list[str]:
    """Every value of a repeated flag, each split at commas, blanks dropped."""
    if isinstance(values, str):
        values = [values]
    found: list[str] = []
    for value in values or []:
        found += [part.strip() for part in value.split(",") if part.strip()]
    return found


def duration_seconds(options, name: str, problems: list[str], at_least: float = 0.0) -> float | None:
    """``--name`` parsed as a duration (seconds), or None with its problem appended (None when not given)."""
    from common.durations import parse_duration

    value = getattr(options, name)
    if value is None:
        return None
    try:
        seconds = parse_duration(value, f"--{name}").total_seconds()
    except ValueError as exc:
        problems.append(str(exc))
        return None
    if seconds < at_least:
        problems.append(f"--{name} must be at least {at_least:g} s")
        return None
    return seconds
