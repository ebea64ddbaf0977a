"""Generated parts of README.md: the option table and the output schema table.

``python -m pipeline.docs`` rewrites the blocks between the
``<!-- BEGIN GENERATED: name -->`` / ``<!-- END GENERATED: name -->``
markers; ``python -m pipeline.docs --check`` fails when README.md is stale
(a test runs it), so the README cannot drift from the code.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pipeline.options import LakeOptions
from schemas.arrow import _ARROW_TYPES
from schemas.fields import COLUMNS, PARTITION_COLUMNS

README = Path(__file__).resolve().parent.parent / "README.md"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def options_table() -> str:
    parser = argparse.ArgumentParser(add_help=False)
    LakeOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    lines = ["| option | default | what it does |", "|---|---|---|"]
    for action in parser._actions:
        if not action.option_strings:
            continue
        flag = action.option_strings[0]
        default = action.default
        if default is None or default == []:
            default = ""
        elif isinstance(default, bool):
            default = str(default).lower()
        choices = f" One of: {', '.join(action.choices)}." if action.choices else ""
        lines.append(f"| `{flag}` | {_cell(f'`{default}`' if default != '' else '')} | "
                     f"{_cell(action.help)}{choices} |")
    return "\n".join(lines)


def schema_table() -> str:
    lines = ["| column | type | from | description |", "|---|---|---|---|"]
    for column in COLUMNS:
        source = {"derived": "(computed)", "event": f"`{column.path}`",
                  "target": f"`{column.path}`"}[column.origin]
        kind = str(_ARROW_TYPES[column.type]).replace("[us, tz=UTC]", "(us, UTC)")
        if column.required:
            kind += ", not null"
        lines.append(f"| `{column.name}` | {kind} | {source} | {_cell(column.description)} |")
    for column in PARTITION_COLUMNS:
        lines.append(f"| `{column.name}` | {_ARROW_TYPES[column.type]} | path | {_cell(column.description)} |")
    return "\n".join(lines)


BLOCKS = {"options": options_table, "schema": schema_table}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {name} -->\n)(?:.*?\n)?(<!-- END GENERATED: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no GENERATED block named {name!r}")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is not up to date")
    args = parser.parse_args(argv)
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if current != wanted:
            print("README.md is stale: run `python -m pipeline.docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
