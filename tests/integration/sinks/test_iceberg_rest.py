"""The REST catalog at the HTTP boundary: a recording server on 127.0.0.1 stands in for the catalog.

No Iceberg REST catalog can run here, so these tests check what crosses the wire: where the
credential comes from and where it goes (the OAuth token endpoint only; every other request
carries the bearer token), and that a catalog failing mid-way is one error line without any
secret, with nothing written. Creating and committing tables through a real REST catalog is
not tested.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from sinks.iceberg.catalog import load_catalog
from sinks.iceberg.settings import IcebergTarget
from tests.support.helpers import personalize, real_events, run_pipeline, write_jsonl

SECRET = "rest-secret-7f3a"


@pytest.fixture
def rest_server():
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            entry = {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                     "body": body}
            requests.append(entry)
            return entry

        def do_GET(self):  # noqa: N802 - the stdlib's name
            entry = self._record()
            if entry["path"].startswith("/v1/config"):
                return self._answer(200, {"defaults": {}, "overrides": {}})
            if "/tables/" in entry["path"]:
                return self._answer(404, {"error": {"message": "Table does not exist: okta.events",
                                                    "type": "NoSuchTableException", "code": 404}})
            return self._answer(404, {"error": {"message": "no", "type": "NotFound", "code": 404}})

        def do_HEAD(self):  # noqa: N802
            self._record()
            self.send_response(204)
            self.end_headers()

        def do_POST(self):  # noqa: N802
            entry = self._record()
            if entry["path"] == "/v1/oauth/tokens":
                return self._answer(200, {"access_token": "issued-token-1", "token_type": "bearer",
                                          "expires_in": 3600,
                                          "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
            if entry["path"] == "/v1/namespaces":
                return self._answer(200, {"namespace": ["okta"], "properties": {}})
            return self._answer(500, {"error": {"message": "storage is read-only", "type": "ServerError",
                                                "code": 500}})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_the_credential_from_the_environment_goes_to_the_token_endpoint_only(rest_server, monkeypatch):
    uri, requests = rest_server
    monkeypatch.setenv("ICEBERG_REST_CREDENTIAL", f"lake-client:{SECRET}")
    catalog = load_catalog(IcebergTarget("okta.events", "rest", uri))
    catalog.table_exists("okta.events")
    token_requests = [r for r in requests if r["path"] == "/v1/oauth/tokens"]
    assert token_requests  # pyiceberg asks once for the config call, once for the catalog's session
    for request in token_requests:
        form = parse_qs(request["body"])
        assert form["grant_type"] == ["client_credentials"] and form["client_secret"] == [SECRET]
    others = [r for r in requests if r["path"] != "/v1/oauth/tokens"]
    assert others and all(r["auth"] == "Bearer issued-token-1" for r in others)
    assert all(SECRET not in r["path"] + r["body"] + (r["auth"] or "") for r in others)


def test_a_token_from_a_credential_file_is_sent_as_the_bearer(rest_server, tmp_path, monkeypatch):
    uri, requests = rest_server
    monkeypatch.delenv("ICEBERG_REST_CREDENTIAL", raising=False)
    token_file = tmp_path / "rest-token"
    token_file.write_text(SECRET + "\n")
    catalog = load_catalog(IcebergTarget("okta.events", "rest", uri, credential_file=str(token_file)))
    catalog.table_exists("okta.events")
    assert requests and all(r["auth"] == f"Bearer {SECRET}" for r in requests)
    assert not any(r["path"] == "/v1/oauth/tokens" for r in requests)


def test_a_catalog_failing_mid_way_is_one_line_with_no_secret_and_nothing_written(rest_server, tmp_path,
                                                                                   monkeypatch):
    uri, requests = rest_server
    monkeypatch.setenv("ICEBERG_REST_CREDENTIAL", f"lake-client:{SECRET}")
    real = real_events()
    source = write_jsonl(tmp_path / "in" / "a.jsonl", [personalize(real[i], i) for i in range(5)])
    lake = tmp_path / "lake"
    run = run_pipeline("--input", str(source), "--output", str(lake), "--iceberg_table=okta.events",
                       "--iceberg_catalog=rest", f"--iceberg_catalog_uri={uri}")
    assert run.code == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "storage is read-only" in lines[0], run.stderr
    print(lines[0])
    assert SECRET not in run.stderr + run.stdout
    assert not lake.exists() or not list(lake.rglob("*.parquet"))
    assert any(r["method"] == "POST" and r["path"].endswith("/namespaces/okta/tables") for r in requests)
