"""Files generated from the code: the docs site's option and schema references, and the Flex Template's metadata.

``python -m devtools.docgen`` rewrites the blocks between the
``<!-- BEGIN GENERATED: name -->`` / ``<!-- END GENERATED: name -->``
markers of ``docs/reference/options.md`` (every pipeline option, grouped as
``--help`` groups them) and ``docs/reference/schema.md`` (every column of the
lake), and writes ``dataflow/metadata.json`` (every pipeline option with its
help text and a validation regex). ``python -m devtools.docgen --check`` fails
when any of them is stale (``make docs`` and a test run it), so none can drift
from the code. The prose around the blocks is written by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from common.flags import str2bool
from pipeline.options import LakeOptions
from schemas.arrow import ARROW_TYPES
from schemas.fields import COLUMNS, PARTITION_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
OPTIONS_PAGE = ROOT / "docs" / "reference" / "options.md"
SCHEMA_PAGE = ROOT / "docs" / "reference" / "schema.md"
METADATA = ROOT / "dataflow" / "metadata.json"

_NUMBER = r"^[0-9]+(\.[0-9]+)?$"
_DURATION = r"^[0-9]+(\.[0-9]+)?[smhd]$"
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
_CLOUD_URI = r"^(gs|s3)://[a-z0-9][-_.a-z0-9]{1,221}(/.*)?$"
_SECRET = r"^((gs|s3)://.+|projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?)$"
_REGEXES = {
    "input": r"^(gs|s3)://.+$",
    "output": _CLOUD_URI, "dead_letter": _CLOUD_URI, "state": _CLOUD_URI,
    "okta_token_file": _SECRET, "okta_private_key_file": _SECRET,
    "okta_org_url": r"^https://[^/?#]+/?$",
    "orgs": r"^(gs|s3)://.+$",
    "since": _TIME, "until": _TIME,
    "slice": _DURATION, "lookback": _DURATION, "window": _DURATION,
    "poll_interval": r"^(auto|[0-9]+(\.[0-9]+)?[smhd])$",
    "dedupe_horizon": _DURATION, "stop_after": _DURATION,
    "subscription": r"^projects/[^/]+/subscriptions/[^/]+$",
    "event_types": r"^[A-Za-z0-9_.*]+(,[A-Za-z0-9_.*]+)*$",
    "run_id": r"^[A-Za-z0-9_.-]+$",
    "okta_org": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$",
    "iceberg_table": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
    "iceberg_catalog_uri": r"^(sqlite:///|postgres(ql)?(\+psycopg2)?://|https?://).+$",
    "iceberg_warehouse": r"^(gs|s3)://.+$",
    "iceberg_credential_file": _SECRET,
    "bigquery_table": r"^[a-z][-a-z0-9.:]{4,61}[a-z0-9]:[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$",
}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def option_parser() -> argparse.ArgumentParser:
    """Every option of the pipeline, declared the way ``python -m pipeline --help`` declares them."""
    parser = argparse.ArgumentParser(add_help=False)
    LakeOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def options_tables() -> str:
    """One section per option group, one table row per option."""
    sections = []
    for group in option_parser()._action_groups:
        actions = [action for action in group._group_actions if action.option_strings]
        if not actions:
            continue
        lines = [f"## {group.title}", ""]
        if group.description:
            lines += [group.description, ""]
        lines += ["| option | default | what it does |", "|---|---|---|"]
        for action in actions:
            default = action.default
            if default is None or default == []:
                default = ""
            elif isinstance(default, bool):
                default = str(default).lower()
            choices = f" One of: {', '.join(action.choices)}." if action.choices else ""
            lines.append(f"| `{action.option_strings[0]}` | {_cell(f'`{default}`' if default != '' else '')} | "
                         f"{_cell(action.help)}{choices} |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def schema_table() -> str:
    lines = ["| column | type | from | description |", "|---|---|---|---|"]
    for column in COLUMNS:
        source = {"derived": "(computed)", "event": f"`{column.path}`",
                  "target": f"`{column.path}`"}[column.origin]
        kind = str(ARROW_TYPES[column.type]).replace("[us, tz=UTC]", "(us, UTC)")
        if column.required:
            kind += ", not null"
        lines.append(f"| `{column.name}` | {kind} | {source} | {_cell(column.description)} |")
    for column in PARTITION_COLUMNS:
        lines.append(f"| `{column.name}` | {ARROW_TYPES[column.type]} | path | {_cell(column.description)} |")
    return "\n".join(lines)


def template_metadata() -> str:
    """The Flex Template's metadata.json: one parameter per pipeline option, with a validation regex."""
    parameters = []
    for action in option_parser()._actions:
        if not action.option_strings:
            continue
        name = action.option_strings[0].lstrip("-")
        if action.choices:
            regex = "^(" + "|".join(action.choices) + ")$"
        elif action.type is str2bool:
            regex = "^(true|false)$"
        elif action.type is int:
            regex = "^[0-9]+$"
        elif action.type is float:
            regex = _NUMBER
        else:
            regex = _REGEXES.get(name)
        parameter = {"name": name, "label": name.replace("_", " ").capitalize(),
                     "helpText": action.help + (f" Default: {action.default}." if action.default not in
                                                (None, [], "") else ""),
                     "isOptional": name != "output"}
        if regex:
            parameter["regexes"] = [regex]
        parameters.append(parameter)
    metadata = {
        "name": "Okta Personal events to a Parquet lake",
        "description": "Okta System Log personal.* events (backfill, incremental, streaming tail or Pub/Sub), "
                       "flattened one row per target, into a Hive-partitioned Parquet lake on GCS or S3.",
        "parameters": parameters,
    }
    return json.dumps(metadata, indent=2) + "\n"


#: page -> {block name -> what fills it}
PAGES = {OPTIONS_PAGE: {"options": options_tables}, SCHEMA_PAGE: {"schema": schema_table}}


def render(page: Path, text: str) -> str:
    """``text`` (the page's current content) with each of its generated blocks filled from the code."""
    for name, make in PAGES[page].items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {name} -->\n)(?:.*?\n)?(<!-- END GENERATED: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{page.relative_to(ROOT)} has no GENERATED block named {name!r}")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def wanted() -> dict[Path, str]:
    """Every generated file with the content the code asks for."""
    files = {page: render(page, page.read_text()) for page in PAGES}
    files[METADATA] = template_metadata()
    return files


def stale() -> list[Path]:
    """The generated files whose content is not what the code asks for (or that are missing)."""
    return [path for path, text in wanted().items() if not path.exists() or path.read_text() != text]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.docgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is not up to date")
    args = parser.parse_args(argv)
    if args.check:
        if behind := stale():
            names = ", ".join(str(path.relative_to(ROOT)) for path in behind)
            print(f"{names} stale: run `python -m devtools.docgen`", file=sys.stderr)
            return 1
        return 0
    for path, text in wanted().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
