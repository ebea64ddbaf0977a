"""The README's generated tables and the Flex Template metadata match the code."""

from devtools.docgen import README, render


def test_readme_tables_are_generated_from_the_code():
    text = README.read_text()
    assert text == render(text), "README.md is stale: run `python -m devtools.docgen`"


def test_every_schema_column_is_documented():
    from schemas.fields import COLUMNS, PARTITION_COLUMNS

    text = README.read_text()
    for column in COLUMNS + PARTITION_COLUMNS:
        assert f"| `{column.name}` |" in text


def test_flex_template_metadata_lists_every_option_with_a_working_regex():
    import argparse
    import json
    import re

    from devtools.docgen import METADATA, template_metadata
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
