"""Fixtures shared by the test modules."""

from __future__ import annotations

import os

import pytest

from emulator import EmulatorConfig, SystemLogServer
from tests.helpers import write_jsonl
from tests.okta_helpers import TOKEN


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


def _pubsub_emulator_command() -> list[str] | None:
    """The emulator's launcher script (it execs the JVM, so its PID is the server's)."""
    import shutil
    import subprocess

    gcloud = shutil.which("gcloud")
    roots = []
    if gcloud:
        try:
            roots.append(subprocess.run([gcloud, "info", "--format=value(installation.sdk_root)"],
                                        capture_output=True, text=True, timeout=60).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    roots.append("/usr/lib/google-cloud-sdk")
    for root in roots:
        script = os.path.join(root, "platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")
        if root and os.path.exists(script):
            return [script]
    return None


class PubSubEmulator:
    def __init__(self, host: str):
        self.host = host
        self.env = {"PUBSUB_EMULATOR_HOST": host}
        self._count = 0

    def topic_and_subscription(self, name: str):
        """A fresh topic and subscription; returns (publish(data, attributes), subscription path)."""
        from google.cloud import pubsub_v1

        self._count += 1
        os.environ["PUBSUB_EMULATOR_HOST"] = self.host
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(PROJECT, f"{name}-{self._count}")
        subscription = subscriber.subscription_path(PROJECT, f"{name}-{self._count}-sub")
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)

        def publish(data: bytes, attributes: dict | None = None) -> str:
            return publisher.publish(topic, data, **(attributes or {})).result(timeout=30)

        return publish, subscription


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    import signal
    import socket
    import subprocess
    import time

    command = _pubsub_emulator_command()
    if command is None:
        pytest.skip("Google's Pub/Sub emulator is not installed (it comes with google-cloud-cli)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    process = subprocess.Popen([*command, "--host=127.0.0.1", f"--port={port}"], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Server started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Pub/Sub emulator did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        previous = os.environ.get("PUBSUB_EMULATOR_HOST")
        yield PubSubEmulator(f"127.0.0.1:{port}")
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
