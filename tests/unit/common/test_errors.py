"""Every error the pipeline defines has the one base, says whether it is retryable, and survives pickling.

On Dataflow a worker's error is pickled on its way to the runner: an error that cannot be unpickled is
replaced by a ``TypeError`` about its constructor, and the run's one line then names the wrong cause.
The classes are discovered (every module of the installed packages imported), not listed, so a new
error class fails here until it is given the base and a row in ``EXAMPLES``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
from pathlib import Path

import pytest

from common.errors import LakeError, error_classes

ROOT = Path(__file__).resolve().parents[3]
URL = "https://acme.okta.com/api/v1/logs?since=2026-01-01T00%3A00%3A00.000Z&limit=1000"


def installed_packages() -> list[str]:
    """The top-level packages ``setup.py`` installs (its ``PACKAGES``)."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PACKAGES" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no PACKAGES")


def defined_exception_classes() -> dict[str, type[BaseException]]:
    """``module.Class`` -> class, for every exception class defined in a module of the installed packages."""
    found = {}
    for package in installed_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py":  # running it is its only purpose
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            module = importlib.import_module(name)
            for value in vars(module).values():
                if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name:
                    found[f"{name}.{value.__qualname__}"] = value
    return found


def examples():
    """One realistic instance of each class, and whether it is retryable (a missing class fails the test)."""
    from okta_client.errors import OktaApiError
    from pipeline.failures import Failure

    return {
        "common.errors.LakeError": [(("the lake's run record is not valid JSON",), {}, False)],
        "okta_client.errors.ConfigurationError": [
            (("OAuth needs the private key: --okta_private_key_file or the OKTA_OAUTH_PRIVATE_KEY variable",), {},
             False)],
        "okta_client.errors.UnsafeUrl": [
            (("refusing the next link https://evil.example.com/api/v1/logs?after=x: it points at another origin",),
             {}, False)],
        "okta_client.errors.OktaApiError": [
            (("GET", URL, 401, "E0000011", "Invalid token provided"), {}, False),
            (("GET", URL, 403, "E0000006", "You do not have permission"), {}, False),
            (("GET", URL, 503, None, "gave up after 9 attempts; last: HTTP 503"), {}, True),
            (("GET", URL, 429, "E0000047", "still rate limited after 51 waits"), {}, True),
            (("GET", URL, None, None, "gave up after 9 attempts; last: ConnectionError"), {}, True),
            (("POST", "https://acme.okta.com/oauth2/v1/token", 400, "invalid_client",
              "the OAuth token request was refused: bad assertion"), {}, False)],
        "okta_client.errors.Stopped": [(("asked to stop while waiting for the rate limit",), {}, True)],
        "tools.audit.held.LakeChanging": [(("the files of lake/event_date=2026-12-06/event_type=personal.x changed "
                                            "under 5 reads in a row",), {}, True)],
        "okta_client.errors.QueryTimeout": [(("GET", URL, 500, "E0000009", "query timed out"), {}, True)],
        "okta_client.errors.IncompleteBody": [
            (("GET", URL, 200, None, "gave up after 9 attempts; last: a body that is not whole JSON, cut short? "
              "(4,096 bytes; unexpected end of data: line 1 column 4097 (char 4096))"), {}, True)],
        "okta_client.errors.ResponseTooLarge": [
            (("GET", URL, 200, None, "the response declares 80,000,000 bytes, over the 67,108,864-byte limit"), {},
             False)],
        "storage.errors.StoreError": [
            (("S3 read of s3://lake/x.parquet failed: SlowDown (HTTP 503)",), {"status": 503}, True),
            (("GCS create of gs://lake/_locks/p/1.lease failed: Forbidden (HTTP 403)",), {"status": 403}, False),
            (("S3 list of s3://lake/_locks/ failed: EndpointConnectionError",), {}, True)],
        "sinks.lake.locks.LeaseLost": [
            (("the commit lease /lake/_locks/event_date=2026-03-01/event_type=personal.x/000000000003.lease was lost "
              "(another commit took the partition over); nothing more was published (rerun as is)",), {}, True)],
        "sinks.lake.locks.LeaseWaitTimeout": [
            (("waited 3600 s for the commit lease of /lake/_locks/event_date=2026-03-01/event_type=personal.x: other "
              "commits kept it (retry the run)",), {}, True)],
        "storage.secrets.SecretUnreadable": [
            (("cannot read the secret projects/p/secrets/okta (NotFound)",), {}, False)],
        "transforms.flatten.WrongType": [
            (("target[0].displayName", "string", {"nested": ["json"]}), {"nullable": False}, False)],
        "transforms.flatten.PartitionNameError": [(("unsafe event_type for a partition: 'personal/../x'",), {}, False)],
        "transforms.jsonio.NotJson": [(("not valid JSON: unexpected character",), {}, False)],
        "transforms.envelope.InvalidEvent": [(("missing required field 'eventType'",), {}, False)],
        "sinks.iceberg.commit.IcebergCommitError": [
            (("could not commit to the Iceberg table okta.events after 50 attempts (other writers kept winning)",),
             {}, True)],
        "sinks.iceberg.catalog.IcebergConfigError": [(("--iceberg_warehouse is required for a sqlite catalog",), {},
                                                      False)],
        "sources.okta.orgs.OrgsFileError": [(("orgs.yaml: org 2 has no url",), {}, False)],
        "sources.files.pool.DecodeProcessFailed": [
            (("decode process 2 (pid 4242) was killed by signal 9 while reading /in/a.jsonl bytes 0-1000; nothing "
              "was committed",), {}, True),
            (("decode process 1 (pid 4243) failed while reading /in/a.jsonl bytes 0-1000: KeyError: 'x'; nothing "
              "was committed",), {}, False)],
        "pipeline.failures.RunFailed": [
            ((Failure("OktaApiError", f"GET {URL} -> HTTP 503: gave up", OktaApiError, True),
              "no cursor was stored; rerunning is safe"), {}, True),
            ((Failure("InvalidEvent", "missing required field 'uuid'"), "rerunning is safe"), {"streaming": True},
             False)],
    }


CLASSES = defined_exception_classes()


def test_the_discovery_finds_the_errors_it_must():
    """The walk itself works (a broken walk would make the tests below pass on nothing)."""
    assert {"okta_client.errors.OktaApiError", "sources.files.pool.DecodeProcessFailed",
            "pipeline.failures.RunFailed"} <= set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_error_class_derives_from_the_one_base(name):
    assert issubclass(CLASSES[name], LakeError), f"{name} does not derive from common.errors.LakeError"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_error_class_round_trips_through_pickle_equal_with_its_message_and_verdict(name):
    cls = CLASSES[name]
    cases = examples().get(name)
    assert cases, f"{name} has no example in test_errors.examples(): add one (arguments and whether it is retryable)"
    for args, kwargs, retryable in cases:
        error = cls(*args, **kwargs)
        assert error.retryable is retryable, (name, args)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            restored = pickle.loads(pickle.dumps(error, protocol=protocol))
            assert type(restored) is cls
            assert restored == error and hash(restored) == hash(error)
            assert str(restored) == str(error) and restored.args == error.args
            assert restored.retryable is retryable
            assert vars(restored) == vars(error)


def test_an_error_raised_and_caught_round_trips_with_what_beam_adds_to_it():
    from okta_client.errors import OktaApiError

    try:
        raise OktaApiError("GET", URL, 503, None, "gave up after 9 attempts")
    except OktaApiError as raised:
        caught = raised
    caught._tagged_with_step = True  # what Beam's DoFnRunner sets on an error it re-raises
    caught.add_note("while reading slice 3")
    restored = pickle.loads(pickle.dumps(caught))
    assert restored == caught and restored.__notes__ == ["while reading slice 3"] and restored._tagged_with_step
    assert (restored.method, restored.url, restored.status, restored.code) == ("GET", URL, 503, None)


def test_errors_that_differ_are_not_equal():
    from okta_client.errors import OktaApiError, QueryTimeout

    refused = OktaApiError("GET", URL, 401, "E0000011", "Invalid token provided")
    assert refused == OktaApiError("GET", URL, 401, "E0000011", "Invalid token provided")
    assert refused != OktaApiError("GET", URL, 403, "E0000011", "Invalid token provided")
    assert OktaApiError("GET", URL, 500, "E0000009", "t") != QueryTimeout("GET", URL, 500, "E0000009", "t")
    retried = OktaApiError("GET", URL, 401, "E0000011", "Invalid token provided")
    retried.retryable = True  # an instance may say otherwise than its status
    assert retried != refused and pickle.loads(pickle.dumps(retried)).retryable


def test_the_standard_bases_callers_catch_are_kept():
    from okta_client.errors import ConfigurationError, OktaApiError
    from sources.okta.orgs import OrgsFileError
    from transforms.flatten import WrongType

    assert issubclass(ConfigurationError, ValueError) and issubclass(OrgsFileError, ValueError)
    assert issubclass(WrongType, ValueError) and issubclass(OktaApiError, RuntimeError)


def test_a_class_verdict_holds_for_its_message_alone():
    """The verdict a worker's traceback text gives back equals the one the raised instance had."""
    for name, cases in examples().items():
        cls = CLASSES[name]
        for args, kwargs, retryable in cases:
            assert cls.retryable_from_message(str(cls(*args, **kwargs))) is retryable, (name, args)


def test_every_discovered_class_is_one_a_traceback_can_be_resolved_to():
    assert set(CLASSES.values()) <= set(error_classes())
