"""The docs stay true to the code: generated pages current, every page in the site, the README a short path.

The options and schema pages and the Flex Template metadata are generated from the code
(``python -m devtools.docgen``); the site's nav (``mkdocs.yml``) lists every page under ``docs/``; the README
stays a newcomer's path of at most 300 lines whose links lead somewhere; and every flag the README and the
pages show is one that some command of the project (or the tool the text names) takes.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from devtools.docgen import METADATA, OPTIONS_PAGE, PAGES, ROOT, SCHEMA_PAGE, render, stale, template_metadata, wanted

README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MOST_LINES = 300
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9_]*)(?![\w-])")

#: Flags the text shows for commands outside the project, and one misspelling shown on purpose.
OTHER_FLAGS = {
    "--parameters": "gcloud dataflow flex-template run",
    "--strict": "mkdocs build",
    "--headless": "chromium (the coverage screenshot)",
    "--screenshot": "chromium (the coverage screenshot)",
    "--sinse": "the misspelt flag the options page shows being refused",
    "--flag": "the options page's placeholder for a yes/no option",
    "--name": "the options page's placeholder for a Flex Template parameter",
    "--collector": "node_exporter --collector.textfile.directory (where the audit's metrics file goes)",
}


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_the_generated_pages_and_the_template_metadata_are_current():
    assert not stale(), "stale: run `python -m devtools.docgen`"
    for path, text in wanted().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `python -m devtools.docgen`"


def test_an_edited_generated_table_is_found_stale_and_the_prose_around_it_is_kept():
    text = OPTIONS_PAGE.read_text()
    edited = text.replace("| `--since` |", "| `--sinse` |", 1).replace("# Options\n", "# Options (edited)\n", 1)
    assert edited != text
    rendered = render(OPTIONS_PAGE, edited)
    assert "| `--sinse` |" not in rendered and "| `--since` |" in rendered
    assert rendered.startswith("# Options (edited)\n")


def test_the_options_page_groups_every_option_as_help_does():
    from devtools.docgen import option_parser

    text = OPTIONS_PAGE.read_text()
    for group in option_parser()._action_groups:
        actions = [a for a in group._group_actions if a.option_strings]
        if actions:
            assert f"\n## {group.title}\n" in text
        for action in actions:
            assert f"| `{action.option_strings[0]}` |" in text


def test_every_schema_column_is_documented():
    from schemas.fields import COLUMNS, PARTITION_COLUMNS

    text = SCHEMA_PAGE.read_text()
    for column in COLUMNS + PARTITION_COLUMNS:
        assert f"| `{column.name}` |" in text, column.name


def test_flex_template_metadata_lists_every_option_with_a_working_regex():
    import argparse
    import json

    from pipeline.options import LakeOptions

    assert METADATA.read_text() == template_metadata(), "dataflow/metadata.json is stale: run python -m devtools.docgen"
    parameters = {p["name"]: p for p in json.loads(METADATA.read_text())["parameters"]}
    parser = argparse.ArgumentParser(add_help=False)
    LakeOptions._add_argparse_args(parser)
    names = {a.option_strings[0].lstrip("-"): a for a in parser._actions if a.option_strings}
    assert set(parameters) == set(names)
    for name, action in names.items():
        parameter = parameters[name]
        assert parameter["helpText"].startswith(action.help)
        for regex in parameter.get("regexes", []):
            pattern = re.compile(regex)
            if isinstance(action.default, (str, int, float)) and not isinstance(action.default, bool):
                assert pattern.match(str(action.default)), (name, regex, action.default)
    good = {"output": "gs://acme-lake/okta", "state": "gs://acme-lake/state/cursor.json",
            "since": "2026-11-01T00:00:00Z",
            "until": "2026-11-02T00:00:00.000+01:00", "okta_org_url": "https://acme.okta.com", "window": "5m",
            "subscription": "projects/p/subscriptions/okta", "raw_event": "false", "okta_rate_share": "0.5"}
    bad = {"output": "/tmp/lake", "state": "cursor.json", "since": "yesterday",
           "okta_org_url": "http://acme.okta.com",
           "window": "5 minutes", "subscription": "okta", "raw_event": "maybe", "okta_rate_share": "half"}
    for name, value in good.items():
        assert re.match(parameters[name]["regexes"][0], value), (name, value)
    for name, value in bad.items():
        assert not re.match(parameters[name]["regexes"][0], value), (name, value)


def nav_pages(entry) -> list[str]:
    """Every page file a ``mkdocs.yml`` nav entry (a list, a {title: page or list} or a page) names."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in nav_pages(item)]
    return [page for value in entry.values() for page in nav_pages(value)]


def test_every_docs_page_is_in_the_site_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs" and config["strict"] is True
    listed = nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), "a page is listed twice"
    on_disk = {path.relative_to(DOCS).as_posix() for path in pages()}
    assert on_disk - set(listed) == set(), "pages missing from the nav of mkdocs.yml"
    assert set(listed) - on_disk == set(), "nav entries without a page"


def test_the_generated_pages_are_pages_of_the_site():
    listed = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    for page in PAGES:
        assert page.relative_to(DOCS).as_posix() in listed


def test_the_readme_is_a_short_path():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MOST_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## The two commands", "## Backfill your own org", "## Where the rows land",
                        "## Schedule it", "## Stream it", "## What is guaranteed", "## Documentation"]


def test_every_link_of_the_readme_leads_to_a_file():
    targets = [t for t in LINK.findall(README.read_text()) if "://" not in t and not t.startswith("#")]
    assert targets
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, missing


def test_the_readme_links_every_page_of_the_site():
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in LINK.findall(README.read_text()) if "://" not in t}
    unlinked = [p.relative_to(ROOT).as_posix() for p in pages() if p.resolve() not in linked]
    assert not unlinked, f"pages the README's Documentation list does not link: {unlinked}"


def pipeline_flags() -> set[str]:
    """Every flag ``python -m pipeline`` takes: the project's options and every Beam option."""
    import argparse

    from apache_beam.options.pipeline_options import PipelineOptions

    import pipeline.options  # noqa: F401 - LakeOptions registers itself as a PipelineOptions subclass

    class EveryFlag(argparse.ArgumentParser):
        def add_value_provider_argument(self, *args, **kwargs):  # how Beam declares templatable flags
            self.add_argument(*args, **kwargs)

    parser = EveryFlag(conflict_handler="resolve")
    for options in PipelineOptions.__subclasses__():
        options._add_argparse_args(parser)
    return {flag for action in parser._actions for flag in action.option_strings}


def help_flags(module: str, monkeypatch) -> set[str]:
    """The flags ``python -m MODULE --help`` lists (run in this process)."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported already
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    return {f"--{name}" for name in FLAG.findall(out.getvalue())}


def hand_written(text: str) -> str:
    """``text`` without its generated blocks (the code's own help texts, checked against the code above)."""
    return re.sub(r"<!-- BEGIN GENERATED: (\w+) -->.*?<!-- END GENERATED: \1 -->", "", text, flags=re.S)


def test_every_flag_the_docs_show_is_taken_by_some_command(monkeypatch):
    shown: dict[str, set[str]] = {}
    for path in [README, ROOT / "monitoring" / "README.md", *pages()]:
        for name in FLAG.findall(hand_written(path.read_text())):
            if not name.endswith("_"):  # a family: `--s3_*`
                shown.setdefault(f"--{name}", set()).add(path.relative_to(ROOT).as_posix())
    known = pipeline_flags() | set(OTHER_FLAGS)
    for module in ("tools.coverage", "tools.audit", "tools.maintain", "devtools.system_log_server", "devtools.eventgen",
                   "devtools.demo", "devtools.docgen"):
        known |= help_flags(module, monkeypatch)
    unknown = {flag: sorted(where) for flag, where in shown.items() if flag not in known}
    assert not unknown, f"flags no command takes: {unknown}"
    assert {"--source", "--okta_org_url", "--state", "--streaming", "--format"} <= set(shown)
