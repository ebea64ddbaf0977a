"""A failed run's one line names the project's own error, whatever Beam wrapped it in, and says whether to rerun."""

from __future__ import annotations

import errno

import pytest
import requests

from common.errors import LakeError
from okta_client.errors import ConfigurationError, IncompleteBody, OktaApiError, QueryTimeout, UnsafeUrl
from pipeline.failures import EXIT_FATAL, EXIT_RETRYABLE, Failure, RunFailed, failure, failure_from_line
from sources.files.pool import DecodeProcessFailed

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
                            QueryTimeout, retryable=True)


def test_a_worker_traceback_text_gives_back_the_typed_error():
    found = failure(RuntimeError(WORKER_TEXT))
    assert found.error is UnsafeUrl and not found.retryable
    assert found.line() == ("UnsafeUrl: refusing the next link https://evil.example.com/api/v1/logs?after=x: it points "
                            "at another origin ('evil.example.com')")


def test_an_unknown_worker_error_is_its_last_line_not_traceback():
    found = failure(RuntimeError("Traceback (most recent call last):\n  File \"x\", line 1\nmod.Oops: it broke"))
    assert found.line() == "Oops: it broke" and found.error is None and not found.retryable


@pytest.mark.parametrize("error", [ConfigurationError("bad"), UnsafeUrl("no"),
                                   OktaApiError("GET", "https://a/api/v1/logs", 403, "E0000006", "forbidden")])
def test_every_client_error_class_is_known(error):
    assert isinstance(error, LakeError)
    assert failure(error).error is type(error)


def test_the_one_line_says_what_the_run_left_behind():
    line = str(RunFailed(Failure("UnsafeUrl", "refusing x"), "rerunning is safe: the lake keeps each uuid once"))
    assert line == ("the run failed (rerunning is safe: the lake keeps each uuid once): UnsafeUrl: refusing x "
                    "(fatal: fix the cause before rerunning)")


def test_a_builtin_error_in_a_worker_traceback_is_typed_too():
    found = failure(RuntimeError("Traceback (most recent call last):\n  File \"x\", line 1\n"
                                 "FileNotFoundError: [Errno 2] No such file: 'gs://b/x' [while running 'Read']"))
    assert found.error is FileNotFoundError and found.line() == "FileNotFoundError: [Errno 2] No such file: 'gs://b/x'"
    assert not found.retryable


def worker_text(last_line: str) -> RuntimeError:
    """What the multi-threaded local runner hands back: the worker's traceback as text, no exception object."""
    return RuntimeError("Traceback (most recent call last):\n  File \"apache_beam/runners/common.py\", line 1512, "
                        "in process\n  File \"/x/y.py\", line 3, in f\n    raise X\n"
                        f"{last_line} [while running 'Step']\n")


@pytest.mark.parametrize("last_line, error, retryable", [
    ("okta_client.errors.OktaApiError: GET https://acme.okta.com/api/v1/logs?limit=5 -> HTTP 503: gave up after 9 "
     "attempts; last: HTTP 503", OktaApiError, True),
    ("okta_client.errors.OktaApiError: GET https://acme.okta.com/api/v1/logs -> no response: gave up after 9 "
     "attempts; last: ConnectionError", OktaApiError, True),
    ("okta_client.errors.OktaApiError: GET https://acme.okta.com/api/v1/logs -> HTTP 429 E0000047: still rate "
     "limited after 51 waits", OktaApiError, True),
    ("okta_client.errors.OktaApiError: GET https://acme.okta.com/api/v1/logs -> HTTP 401 E0000011: Invalid token "
     "provided", OktaApiError, False),
    ("okta_client.errors.IncompleteBody: GET https://acme.okta.com/api/v1/logs -> HTTP 200: gave up after 9 "
     "attempts; last: a body that is not whole JSON, cut short? (9 bytes; unexpected end of data)", IncompleteBody,
     True),
    ("okta_client.errors.OktaApiError: GET https://acme.okta.com/api/v1/logs -> HTTP 403 E0000006: forbidden",
     OktaApiError, False),
    ("sources.files.pool.DecodeProcessFailed: decode process 2 (pid 4242) was killed by signal 9 while reading "
     "/in/a.jsonl bytes 0-100; nothing was committed", DecodeProcessFailed, True),
    ("sources.files.pool.DecodeProcessFailed: decode process 1 (pid 4242) failed while reading /in/a.jsonl bytes "
     "0-100: MemoryError: ; nothing was committed", DecodeProcessFailed, False),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", ConnectionResetError, True),
    ("OSError: [Errno 5] Input/output error", OSError, True),
    ("OSError: [Errno 28] No space left on device", OSError, False),
    ("PermissionError: [Errno 13] Permission denied: '/lake'", PermissionError, False),
    ("requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='x', port=443): Read timed out.",
     requests.exceptions.ReadTimeout, True),
])
def test_a_worker_error_known_only_as_text_keeps_its_class_and_its_verdict(last_line, error, retryable):
    found = failure(worker_text(last_line))
    assert found.error is error and found.kind == error.__name__
    assert found.retryable is retryable
    assert found.exit_code == (EXIT_RETRYABLE if retryable else EXIT_FATAL)
    assert "[while running" not in found.message


def test_a_worker_error_of_a_class_defined_anywhere_in_the_project_is_recovered():
    """Not a list: any LakeError subclass, including one defined after the failures module was written."""
    class TableLocked(LakeError, RuntimeError):
        retryable = True

    name = f"{TableLocked.__module__}.{TableLocked.__qualname__}"
    found = failure(worker_text(f"{name}: the table is locked by another writer"))
    assert found.error is TableLocked and found.retryable
    assert found.line() == "TableLocked: the table is locked by another writer"


@pytest.mark.parametrize("error, retryable", [
    (OktaApiError("GET", "https://a/api/v1/logs", None, None, "gave up after 9 attempts; last: ConnectionError"),
     True),
    (OktaApiError("GET", "https://a/api/v1/logs", 502, None, "gave up after 9 attempts; last: HTTP 502"), True),
    (OktaApiError("POST", "https://a/oauth2/v1/token", 401, "invalid_client", "the OAuth token request was refused"),
     False),
    (OktaApiError("GET", "https://a/api/v1/logs", 400, "E0000031", "invalid search criteria"), False),
    (ConfigurationError("OAuth needs the private key"), False),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), True),
    (TimeoutError("timed out"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/in/x.jsonl"), False),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/state/cursor.json"), False),
    (OSError(errno.EROFS, "Read-only file system"), False),
    (requests.exceptions.ConnectionError("connection aborted"), True),
    (requests.exceptions.InvalidURL("no host"), False),
    (ValueError("not a number"), False),
    (KeyError("missing"), False),
])
def test_each_error_that_ends_a_run_is_fatal_or_retryable(error, retryable):
    found = failure(error)
    assert found.retryable is retryable
    assert found.exit_code == (EXIT_RETRYABLE if retryable else EXIT_FATAL)
    assert found.verdict().startswith("retryable: " if retryable else "fatal: ")


def test_an_http_error_is_judged_by_its_status():
    def http_error(status: int) -> requests.HTTPError:
        response = requests.Response()
        response.status_code = status
        return requests.HTTPError(f"{status} error", response=response)

    assert failure(http_error(503)).retryable and failure(http_error(429)).retryable
    assert not failure(http_error(404)).retryable and not failure(http_error(403)).retryable


def test_a_standard_error_under_beams_wrapper_keeps_its_verdict():
    try:
        try:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("ConnectionResetError: [Errno 104] Connection reset by peer "
                               "[while running 'X']") from inner
    except RuntimeError as exc:
        assert failure(exc).retryable


def test_a_retryable_run_failure_says_so_and_exits_75():
    cause = failure(OktaApiError("GET", "https://a/api/v1/logs", 503, None, "gave up after 9 attempts"))
    failed = RunFailed(cause, "no cursor was stored; rerunning is safe")
    assert str(failed).endswith("(retryable: rerun as is)")
    assert failed.retryable and failed.exit_code == 75


def test_a_failed_orgs_line_is_judged_by_its_class_and_message():
    """A many-org run keeps each org's error as "Class: message" in its manifest."""
    down = failure_from_line("OktaApiError: GET http://127.0.0.1:9/api/v1/logs?limit=5 -> no response: gave up "
                             "after 2 attempts; last: ConnectionError")
    revoked = failure_from_line("OktaApiError: GET http://127.0.0.1:9/api/v1/logs -> HTTP 401 E0000011: Invalid "
                                "token provided")
    unknown = failure_from_line("Oops: it broke")
    assert (down.error, down.retryable) == (OktaApiError, True)
    assert (revoked.error, revoked.retryable) == (OktaApiError, False)
    assert (unknown.error, unknown.retryable) == (None, False)


def test_an_error_raised_to_say_where_is_judged_by_the_error_it_was_raised_from():
    """``raise OSError("cannot store the cursor ...") from exc`` (sources.okta.state): what it wraps decides."""
    def store_failing_with(cause: BaseException) -> OSError:
        try:
            try:
                raise cause
            except OSError as exc:
                raise OSError(f"cannot store the cursor in --state /s/c.json: {type(exc).__name__}: {exc}") from exc
        except OSError as wrapped:
            return wrapped

    assert not failure(store_failing_with(FileExistsError(errno.EEXIST, "File exists"))).retryable
    assert failure(store_failing_with(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))).retryable
    assert failure(OSError("staged file x is missing and was never committed")).retryable  # no cause: an I/O error
    as_text = failure(worker_text("OSError: cannot store the cursor in --state /s/c.json: FileExistsError: [Errno 17] "
                                  "File exists: '/s'"))
    assert as_text.error is OSError and not as_text.retryable
