"""Reading a secret from where a run is told it lives: a file, a gs:// or s3:// object, or Secret Manager.

Shared by every credential the pipeline reads at run time (the Okta token or key,
an Iceberg REST catalog credential). Errors name where the secret was looked for,
never its content.
"""

from __future__ import annotations

import os
import re
import threading

from common.errors import LakeError


class SecretUnreadable(LakeError, ValueError):
    """The secret could not be read; the message names the place, never the content."""


SECRET_MANAGER_ENDPOINT = "https://secretmanager.googleapis.com"
_SECRET_VERSION = re.compile(r"^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$")


def is_secret_manager_name(path: str) -> bool:
    return bool(_SECRET_VERSION.match(path or ""))


def read_secret_manager(name: str) -> str:
    """``projects/P/secrets/S[/versions/V]`` from Google Secret Manager, with the worker's own credentials."""
    import base64

    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    if "/versions/" not in name:
        name += "/versions/latest"
    endpoint = os.environ.get("SECRET_MANAGER_ENDPOINT", SECRET_MANAGER_ENDPOINT).rstrip("/")
    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        response = AuthorizedSession(credentials).get(f"{endpoint}/v1/{name}:access", timeout=30)
    except Exception as exc:  # noqa: BLE001
        raise SecretUnreadable(f"cannot read the secret {name} ({exc.__class__.__name__})") from None
    if response.status_code != 200:
        raise SecretUnreadable(f"cannot read the secret {name}: Secret Manager answered HTTP "
                                 f"{response.status_code} (does the worker's service account have "
                                 "roles/secretmanager.secretAccessor?)")
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8").strip()


_READ: dict[str, str] = {}  # path -> the secret, read once per process (see read_secret)
_READ_LOCK = threading.Lock()


def read_secret(path: str, fresh: bool = False) -> str:
    """A secret from a local file, a Beam filesystem URI (gs://, s3://) or a Secret Manager name.

    Read once per process: the run's checks read it before anything starts, and a reader in the same
    process (a local run) takes that value instead of reading it again. ``fresh`` reads it anew (a
    reader that starts over after its credential was refused: it may have been rotated). Errors name
    where the secret was looked for, never its content.
    """
    with _READ_LOCK:
        if not fresh and path in _READ:
            return _READ[path]
    secret = _read(path)
    with _READ_LOCK:
        _READ[path] = secret
    return secret


def _read(path: str) -> str:
    if is_secret_manager_name(path):
        return read_secret_manager(path)
    from storage import fs

    try:
        return fs.read_text(path).strip()
    except Exception as exc:  # noqa: BLE001
        raise SecretUnreadable(f"cannot read the secret file {path} ({exc.__class__.__name__})") from None
