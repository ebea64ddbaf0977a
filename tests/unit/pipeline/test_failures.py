"""A failed run's one line names the project's own error, whatever Beam wrapped it in."""

from __future__ import annotations

import pytest

from okta_client.errors import ConfigurationError, OktaApiError, QueryTimeout, UnsafeUrl
from pipeline.failures import PROJECT_ERRORS, Failure, RunFailed, failure

WORKER_TEXT = """Traceback (most recent call last):
  File "apache_beam/runners/common.py", line 1512, in apache_beam.runners.common.DoFnRunner.process
  File "/x/okta_client/urls.py", line 48, in check_next_link
    raise UnsafeUrl(
okta_client.errors.UnsafeUrl: refusing the next link https://evil.example.com/api/v1/logs?after=x: it points \
at another origin ('evil.example.com') [while running 'ReadSystemLogRange/FetchSlices']
"""


def test_an_error_object_under_beams_wrapping_is_found_by_type():
    try:
        try:
            raise QueryTimeout("GET", "https://acme.okta.com/api/v1/logs", 500, "E0000009", "timed out")
        except QueryTimeout as inner:
            raise RuntimeError("wrapped [while running 'X']") from inner
    except RuntimeError as exc:
        found = failure(exc)
    assert found == Failure("QueryTimeout", "GET https://acme.okta.com/api/v1/logs -> HTTP 500 E0000009: timed out",
                            QueryTimeout)


def test_a_worker_traceback_text_gives_back_the_typed_error():
    found = failure(RuntimeError(WORKER_TEXT))
    assert found.error is UnsafeUrl
    assert found.line() == ("UnsafeUrl: refusing the next link https://evil.example.com/api/v1/logs?after=x: it points "
                            "at another origin ('evil.example.com')")


def test_an_unknown_worker_error_is_its_last_line_not_traceback():
    found = failure(RuntimeError("Traceback (most recent call last):\n  File \"x\", line 1\nmod.Oops: it broke"))
    assert found.line() == "Oops: it broke" and found.error is None


@pytest.mark.parametrize("error", [ConfigurationError("bad"), UnsafeUrl("no"),
                                   OktaApiError("GET", "https://a/api/v1/logs", 403, "E0000006", "forbidden")])
def test_every_client_error_class_is_known(error):
    assert isinstance(error, PROJECT_ERRORS)
    assert failure(error).error is type(error)


def test_the_one_line_says_what_the_run_left_behind():
    line = str(RunFailed(Failure("UnsafeUrl", "refusing x"), "rerunning is safe: the lake keeps each uuid once"))
    assert line == "the run failed (rerunning is safe: the lake keeps each uuid once): UnsafeUrl: refusing x"


def test_a_builtin_error_in_a_worker_traceback_is_typed_too():
    found = failure(RuntimeError("Traceback (most recent call last):\n  File \"x\", line 1\n"
                                 "FileNotFoundError: [Errno 2] No such file: 'gs://b/x' [while running 'Read']"))
    assert found.error is FileNotFoundError and found.line() == "FileNotFoundError: [Errno 2] No such file: 'gs://b/x'"
