"""Fixtures shared by every test module, unit and integration (the one place they are defined)."""

from __future__ import annotations

import functools
import os

import pytest

from devtools.system_log_server import EmulatorConfig, SystemLogServer
from tests.support.helpers import write_jsonl
from tests.support.okta import TOKEN
from tests.support.pubsub import pubsub_emulator_command, started_pubsub_emulator, topic_and_subscription


@pytest.fixture
def okta_token_env(monkeypatch):
    """OKTA_API_TOKEN set to the test token (the one the local System Log server accepts)."""
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)
    return TOKEN


@pytest.fixture
def fast_retries(monkeypatch):
    """The runs' Okta clients give up after one retry instead of eight (the client's backoff is tested elsewhere)."""
    from okta_client import SystemLogClient
    from sources.okta import connect as okta_config

    monkeypatch.setattr(okta_config, "SystemLogClient",
                        functools.partial(SystemLogClient, max_retries=1, backoff_base=0.05, backoff_cap=0.1))


@pytest.fixture
def token_file(tmp_path):
    """A file holding an Okta API token (what --okta_token_file points at)."""
    path = tmp_path / "okta-token"
    path.write_text("file-token-0123")
    return path


@pytest.fixture(scope="session")
def rsa_private_key():
    """One 2048-bit RSA key for every OAuth test (generating one takes a while)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def okta_server(tmp_path):
    """okta_server(events, **config) -> a running SystemLogServer holding ``events``, stopped at teardown."""
    servers = []

    def _start(events: list[dict] | None = None, **config) -> SystemLogServer:
        if events is not None:
            config["events_file"] = str(write_jsonl(tmp_path / f"server-{len(servers)}.jsonl", events))
        config.setdefault("token", TOKEN)
        server = SystemLogServer(EmulatorConfig(**config)).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


# --- Google's Pub/Sub emulator -------------------------------------------------------------------------------

PROJECT = "okta-lake-test"


class PubSubEmulator:
    def __init__(self, host: str):
        self.host = host
        self.env = {"PUBSUB_EMULATOR_HOST": host}
        self._count = 0

    def topic_and_subscription(self, name: str):
        """A fresh topic and subscription; returns (publish(data, attributes), subscription path)."""
        self._count += 1
        publisher, topic, subscription = topic_and_subscription(self.host, PROJECT, f"{name}-{self._count}")

        def publish(data: bytes, attributes: dict | None = None) -> str:
            return publisher.publish(topic, data, **(attributes or {})).result(timeout=30)

        return publish, subscription


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    command = pubsub_emulator_command()
    if command is None:
        pytest.skip("Google's Pub/Sub emulator is not installed (it comes with google-cloud-cli)")
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    with started_pubsub_emulator(tmp_path_factory.mktemp("pubsub") / "emulator.log", command) as host:
        yield PubSubEmulator(host)
    if previous is None:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = previous


# --- cloud storage stand-ins -----------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def gce_metadata():
    """A GCE metadata server on loopback that hands out a dummy token, so Google auth succeeds at once offline."""
    import json
    import re
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            path = self.path.split("?")[0]
            if path.endswith("/token"):
                body = json.dumps({"access_token": "dummy-emulator-token", "expires_in": 3600,
                                   "token_type": "Bearer"}).encode()
            elif path.endswith("/project-id"):
                body = b"okta-lake-test"
            elif path.endswith("/email"):
                body = b"test@okta-lake-test.iam.gserviceaccount.com"
            elif path.endswith("/scopes"):
                body = b"https://www.googleapis.com/auth/cloud-platform"
            elif re.search(r"/service-accounts/[^/]+$", path.rstrip("/")):
                # "default", and the email itself: google-auth asks by email once it knows it (a later refresh).
                body = json.dumps({"email": "test@okta-lake-test.iam.gserviceaccount.com", "aliases": ["default"],
                                   "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}).encode()
            else:
                body = b""
            self.send_response(200)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "application/json" if body[:1] == b"{" else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    yield {"GCE_METADATA_HOST": host, "GCE_METADATA_IP": host, "GOOGLE_CLOUD_PROJECT": "okta-lake-test"}
    server.shutdown()


def _start_server(command: list[str], log, ready: str | None = None, timeout: float = 30):
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    return process, deadline


def _stop(process) -> None:
    import signal
    import subprocess

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def _wait_http(port: int, process, deadline: float, log) -> None:
    import socket
    import time

    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the stand-in exited:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stand-in did not listen:\n{log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory, gce_metadata):
    """gcp-storage-emulator on a free port with bucket ``lake-bucket``; yields the environment to use it."""
    import sys

    port = _free_port()
    root = tmp_path_factory.mktemp("gcs")
    log = root / "emulator.log"
    binary = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    process, deadline = _start_server([binary, "-d", str(root / "data"), "start", "--host", "127.0.0.1", "--port",
                                       str(port), "--default-bucket", "lake-bucket"], log)
    try:
        _wait_http(port, process, deadline, log)
        yield {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", **gce_metadata}
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free port with bucket ``lake``; yields the Beam options that reach it."""
    import sys

    import boto3

    port = _free_port()
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    binary = os.path.join(os.path.dirname(sys.executable), "moto_server")
    process, deadline = _start_server([binary, "-H", "127.0.0.1", "-p", str(port)], log)
    try:
        _wait_http(port, process, deadline, log)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket="lake")
        yield [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=test", "--s3_secret_access_key=test",
               "--s3_region_name=us-east-1"]
    finally:
        _stop(process)


@pytest.fixture(params=["gs", "s3"])
def cloud(request, monkeypatch):
    """(bucket base URI, extra pipeline options) for one stand-in (gcs_emulator, s3_server), its environment set."""
    if request.param == "gs":
        for key, value in request.getfixturevalue("gcs_emulator").items():
            monkeypatch.setenv(key, value)
        return "gs://lake-bucket", []
    return "s3://lake", request.getfixturevalue("s3_server")


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory):
    """bqemulator (from .venv-bq, which `make test` builds) on free ports; yields its REST endpoint."""
    from tests.support.helpers import REPO

    binary = REPO / ".venv-bq" / "bin" / "bqemulator"
    if not binary.exists():
        pytest.skip("bqemulator is not installed: `make test` builds .venv-bq")
    rest, grpc = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("bq") / "bqemulator.log"
    process, deadline = _start_server([str(binary), "start", "--rest-port", str(rest), "--grpc-port", str(grpc),
                                       "--project", "okta-lake-test"], log, timeout=60)
    try:
        _wait_http(rest, process, deadline, log)
        yield f"http://127.0.0.1:{rest}"
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server (the pgserver wheel's binaries), on a Unix socket, stopped afterwards.

    ``postgres.psql("CREATE DATABASE x;")`` makes a fresh database, ``postgres.get_uri("x")`` its URI."""
    pgserver = pytest.importorskip("pgserver")
    for attempt in range(3):  # pg_ctl's start wait can run out on a loaded machine; a new folder, again
        try:
            server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
            break
        except Exception:  # noqa: BLE001
            if attempt == 2:
                raise
    yield server
    server.cleanup()
