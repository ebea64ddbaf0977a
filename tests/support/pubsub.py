"""Google's Pub/Sub emulator (from google-cloud-cli) on a free loopback port, for tests and benchmarks.

``started_pubsub_emulator(log)`` starts it in its own process group, waits
for "Server started", yields ``127.0.0.1:PORT`` and stops the group on exit;
``topic_and_subscription`` creates a fresh pair on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def pubsub_emulator_command() -> list[str] | None:
    """The emulator's launcher script (it execs the JVM, so its PID is the server's), or None."""
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


@contextlib.contextmanager
def started_pubsub_emulator(log: Path, command: list[str] | None = None, timeout: float = 60):
    """Run the emulator until the block ends; yields its ``host:port``."""
    command = command or pubsub_emulator_command()
    if command is None:
        raise RuntimeError("Google's Pub/Sub emulator is not installed (it comes with google-cloud-cli)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([*command, "--host=127.0.0.1", f"--port={port}"], stdout=log.open("wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while "Server started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Pub/Sub emulator did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def topic_and_subscription(host: str, project: str, name: str):
    """Create ``name`` and ``name-sub`` on the emulator at ``host``; returns (publisher, topic, subscription)."""
    from google.cloud import pubsub_v1

    os.environ["PUBSUB_EMULATOR_HOST"] = host
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(project, name)
    subscription = subscriber.subscription_path(project, f"{name}-sub")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    return publisher, topic, subscription
