"""Fixtures shared by every test module, unit and integration (the one place they are defined)."""

from __future__ import annotations

import functools
import os

import pytest

from devtools.system_log_server import EmulatorConfig, SystemLogServer
from tests.support.helpers import write_jsonl
from tests.support.okta import TOKEN
from tests.support.pubsub import pubsub_emulator_command, started_pubsub_emulator, topic_and_subscription


def pytest_addoption(parser):
    parser.addoption("--first-use-rounds", type=int, default=4,
                     help="rounds of four runs opening a fresh Iceberg catalog together (the issue asks for 20)")


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


# --- cloud storage stand-ins (tests/support/stores.py) ---------------------------------------------------------


@pytest.fixture(scope="session")
def gce_metadata():
    """A GCE metadata server on loopback that hands out a dummy token, so Google auth succeeds at once offline."""
    from tests.support.stores import gce_metadata

    with gce_metadata() as env:
        yield env


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory, gce_metadata):
    """fake-gcs-server on a free port with bucket ``lake-bucket`` (create-if-absent enforced, as on Cloud Storage);
    yields the environment to use it."""
    from tests.support.stores import fake_gcs

    with fake_gcs(tmp_path_factory.mktemp("gcs")) as url:
        yield {"STORAGE_EMULATOR_HOST": url, **gce_metadata}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free port with bucket ``lake``; yields the options that reach it (``--s3_*``)."""
    from tests.support.stores import moto_s3

    with moto_s3(tmp_path_factory.mktemp("s3")) as options:
        yield options


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
    from tests.support.stores import free_port, start_server, stop, wait_http

    binary = REPO / ".venv-bq" / "bin" / "bqemulator"
    if not binary.exists():
        pytest.skip("bqemulator is not installed: `make test` builds .venv-bq")
    rest, grpc = free_port(), free_port()
    log = tmp_path_factory.mktemp("bq") / "bqemulator.log"
    process = start_server([str(binary), "start", "--rest-port", str(rest), "--grpc-port", str(grpc),
                            "--project", "okta-lake-test"], log)
    try:
        wait_http(rest, process, log, timeout=60)
        yield f"http://127.0.0.1:{rest}"
    finally:
        stop(process)


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


@pytest.fixture
def captured_metrics(monkeypatch):
    """The local Prometheus endpoints (``pipeline.monitoring.LocalMetrics``) a run made in this process, in order."""
    from pipeline import monitoring

    made = []

    class Captured(monitoring.LocalMetrics):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(monitoring, "LocalMetrics", Captured)
    return made
