"""--orgs=FILE: parsed from YAML or JSON, every problem one line naming the org, no secret ever echoed."""

from __future__ import annotations

import json

import pytest

from sources.okta.orgs import load_document, parse_orgs, state_file
from tests.support.helpers import run_pipeline
from tests.support.okta import backfill_args

SECRET = "00aB-literal-token-value-never-printed"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("TOKEN_ACME", "t-acme")
    monkeypatch.setenv("KEY_BETA", "-----BEGIN PRIVATE KEY-----")


def parse(document, state_dir="/state"):
    return parse_orgs(document, default_event_types="personal.*", default_rate_share=1.0, state_dir=state_dir)


def test_yaml_and_json_give_the_same_orgs(tmp_path, env):
    token = tmp_path / "beta.token"
    token.write_text("t-beta")
    yaml_file = tmp_path / "orgs.yaml"
    yaml_file.write_text(f"""
orgs:
  - url: https://acme.okta.com
    token_env: TOKEN_ACME
    rate_share: 0.5
  - url: https://beta.okta.com/
    token_file: {token}
    event_types: [personal.user.app_migration.export]
    state: {tmp_path}/beta-cursor.json
  - url: https://gamma.okta.com
    client_id: 0oa123
    private_key_env: KEY_BETA
""")
    json_file = tmp_path / "orgs.json"
    json_file.write_text(json.dumps(load_document(str(yaml_file))))
    for path in (yaml_file, json_file):
        orgs, problems = parse(load_document(str(path)))
        assert problems == []
        assert [o.host for o in orgs] == ["acme.okta.com", "beta.okta.com", "gamma.okta.com"]
        acme, beta, gamma = orgs
        assert acme.settings.rate_share == 0.5 and acme.settings.token_env == "TOKEN_ACME"
        assert acme.state == "/state/acme.okta.com.json" and acme.event_types == "personal.*"
        assert beta.settings.token_file == str(token) and beta.state == f"{tmp_path}/beta-cursor.json"
        assert beta.event_types == "personal.user.app_migration.export"
        assert 'eventType eq "personal.user.app_migration.export"' in beta.settings.filter
        assert gamma.settings.uses_oauth and gamma.settings.private_key_env == "KEY_BETA"
        assert SECRET not in repr(orgs)


def test_a_port_is_kept_in_the_host_and_the_state_name_is_safe():
    assert state_file("gs://b/state/", "127.0.0.1:8080") == "gs://b/state/127.0.0.1_8080.json"


@pytest.mark.parametrize("entry, message", [
    ({"url": "https://acme.okta.com", "token": SECRET}, "'token' would hold a secret inline"),
    ({"url": "https://acme.okta.com", "api_token": SECRET}, "'api_token' would hold a secret inline"),
    ({"url": "https://acme.okta.com", "token_env": SECRET}, "token_env must name an environment variable"),
    ({"url": "https://acme.okta.com", "client_id": "x", "private_key": SECRET}, "'private_key' would hold"),
    ({"url": "https://acme.okta.com"}, "give exactly one credential reference"),
    ({"url": "https://acme.okta.com", "token_env": "NOT_SET_ANYWHERE"}, "NOT_SET_ANYWHERE is not set"),
    ({"url": "https://acme.okta.com", "token_file": "/no/such/token"}, "token_file"),
    ({"url": "http://acme.okta.com", "token_env": "TOKEN_ACME"}, "url: the Okta org URL must use https"),
    ({"url": "https://acme.okta.com", "token_env": "TOKEN_ACME", "rate_share": 0}, "rate_share must be"),
    ({"url": "https://acme.okta.com", "token_env": "TOKEN_ACME", "event_types": "bad type"}, "event_types"),
    ({"url": "https://acme.okta.com", "token_env": "TOKEN_ACME", "colour": 1}, "unknown key 'colour'"),
])
def test_each_problem_is_one_line_naming_the_org_and_no_secret_is_echoed(entry, message, env):
    orgs, problems = parse([entry])
    assert orgs == [] and len(problems) >= 1
    assert message in problems[0] and "\n" not in problems[0]
    assert all(SECRET not in p for p in problems)


def test_the_same_org_twice_and_shared_state_are_refused(env):
    _, problems = parse([{"url": "https://acme.okta.com", "token_env": "TOKEN_ACME"},
                         {"url": "https://ACME.okta.com/", "token_env": "TOKEN_ACME"}])
    assert any("the same org as orgs[0]" in p for p in problems)
    _, problems = parse([{"url": "https://a.okta.com", "token_env": "TOKEN_ACME", "state": "/s.json"},
                         {"url": "https://b.okta.com", "token_env": "TOKEN_ACME", "state": "/s.json"}])
    assert any("each org needs its own" in p for p in problems)


def test_the_cli_reports_every_problem_then_exits_2_before_anything_starts(tmp_path, env):
    orgs = tmp_path / "orgs.yaml"
    orgs.write_text(f"- url: https://acme.okta.com\n  token: {SECRET}\n- url: ftp://x\n  token_env: TOKEN_ACME\n")
    args = [a for a in backfill_args(f"--orgs={orgs}", output=str(tmp_path / "lake"))
            if not a.startswith("--okta_org_url")]
    run = run_pipeline(*args)
    assert run.code == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 2, run.stderr
    assert "acme.okta.com" in lines[0] and "orgs[1]" in lines[1]
    assert SECRET not in run.stderr + run.stdout
    assert not (tmp_path / "lake").exists()


def test_orgs_and_the_one_org_flags_do_not_mix(tmp_path, env):
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps([{"url": "https://acme.okta.com", "token_env": "TOKEN_ACME"}]))
    run = run_pipeline("--source=okta", f"--orgs={orgs}", "--okta_org_url=https://acme.okta.com",
                       "--okta_token_file=/x", f"--output={tmp_path / 'lake'}", f"--state={tmp_path / 'state'}")
    assert run.code == 2
    assert "--okta_org_url is per org with --orgs" in run.stderr
    assert "--okta_token_file is per org with --orgs" in run.stderr


def test_incremental_orgs_need_a_state_folder(tmp_path, env):
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps([{"url": "https://acme.okta.com", "token_env": "TOKEN_ACME"}]))
    run = run_pipeline("--source=okta", f"--orgs={orgs}", f"--output={tmp_path / 'lake'}")
    assert run.code == 2 and "need a cursor per org: give --state=FOLDER" in run.stderr
    assert "acme.okta.com" in run.stderr


def test_an_unreadable_orgs_file_is_one_line(tmp_path):
    run = run_pipeline("--source=okta", f"--orgs={tmp_path / 'missing.yaml'}", f"--output={tmp_path / 'lake'}",
                       f"--state={tmp_path / 'state'}")
    assert run.code == 2 and "--orgs" in run.stderr and "cannot be read" in run.stderr


def test_variables_of_the_launching_machine_are_refused_for_a_service_runner(tmp_path, env):
    orgs = tmp_path / "orgs.json"
    orgs.write_text(json.dumps([{"url": "https://acme.okta.com", "token_env": "TOKEN_ACME"}]))
    run = run_pipeline("--runner=DataflowRunner", "--dry_run=True", "--project=okta-lake-test",
                       "--region=us-central1", "--temp_location=gs://okta-lake-test/tmp", "--source=okta",
                       f"--orgs={orgs}", "--state=gs://okta-lake-test/state", "--output=gs://okta-lake-test/lake")
    assert run.code == 2
    assert "token_env / private_key_env name a variable of this machine" in run.stderr


def test_an_org_comes_back_whole_from_its_own_entry(tmp_path, env):
    from sources.okta.orgs import entry_of

    token = tmp_path / "beta.token"
    token.write_text("t-beta")
    orgs, problems = parse({"orgs": [
        {"url": "https://acme.okta.com", "token_env": "TOKEN_ACME", "rate_share": 0.25, "event_types": "personal.a*"},
        {"url": "https://beta.okta.com", "client_id": "0oa1", "private_key_env": "KEY_BETA", "key_id": "k1",
         "dpop": True, "scopes": "okta.logs.read okta.users.read"}]})
    assert not problems
    for org in orgs:
        entry = entry_of(org)
        assert "t-acme" not in json.dumps(entry) and "PRIVATE KEY" not in json.dumps(entry)  # references only
        again, problems = parse({"orgs": [entry]})
        assert not problems and again == [org]
