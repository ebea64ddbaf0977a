"""How to reach an Okta org from a worker: the settings, and the credentials resolved at run time.

:class:`OktaSettings` is what travels inside the pipeline graph: the org URL,
which kind of credential, and *where* to read it (an environment variable
name, a file path or URI) - never a secret itself, so nothing sensitive ends
up in pipeline options, display data or a Dataflow job description. Each
worker reads the secret when its DoFn starts (:func:`build_client`).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

from okta_client import OAuthPrivateKeyJwtAuth, SswsAuth, SystemLogClient
from okta_client.errors import ConfigurationError
from okta_client.ratelimit import RateGovernor

TOKEN_ENV = "OKTA_API_TOKEN"
PRIVATE_KEY_ENV = "OKTA_OAUTH_PRIVATE_KEY"


@dataclass(frozen=True)
class OktaSettings:
    org_url: str
    token_file: str | None = None  # SSWS token in a file (local path, gs://, s3://)
    client_id: str | None = None  # set -> OAuth private_key_jwt instead of SSWS
    private_key_file: str | None = None  # PEM or JWK (local path, gs://, s3://)
    key_id: str | None = None
    scopes: tuple = ("okta.logs.read",)
    dpop: bool = False
    rate_share: float = 1.0
    page_limit: int = 1000
    filter: str = ""  # SCIM filter pushed down to Okta ("" = none)
    max_response_bytes: int = 64 * 1024 * 1024

    @property
    def uses_oauth(self) -> bool:
        return bool(self.client_id)

    def describe(self) -> str:
        how = f"OAuth client {self.client_id}" + (" + DPoP" if self.dpop else "") if self.uses_oauth else "SSWS token"
        return f"{self.org_url} ({how}, rate share {self.rate_share:g})"


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
        raise ConfigurationError(f"cannot read the secret {name} ({exc.__class__.__name__})") from None
    if response.status_code != 200:
        raise ConfigurationError(f"cannot read the secret {name}: Secret Manager answered HTTP "
                                 f"{response.status_code} (does the worker's service account have "
                                 "roles/secretmanager.secretAccessor?)")
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8").strip()


def read_secret_file(path: str) -> str:
    """A secret from a local file, a Beam filesystem URI (gs://, s3://) or a Secret Manager name.

    Errors name where the secret was looked for, never its content.
    """
    if is_secret_manager_name(path):
        return read_secret_manager(path)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return handle.read().decode("utf-8").strip()
    except Exception as exc:  # noqa: BLE001
        raise ConfigurationError(f"cannot read the secret file {path} ({exc.__class__.__name__})") from None


def resolve_auth(settings: OktaSettings):
    """The credential, read now from the environment or the file the settings name."""
    if settings.uses_oauth:
        if settings.private_key_file:
            key = read_secret_file(settings.private_key_file)
        else:
            key = os.environ.get(PRIVATE_KEY_ENV, "")
            if not key.strip():
                raise ConfigurationError(
                    f"OAuth needs the private key: --okta_private_key_file or the {PRIVATE_KEY_ENV} variable")
        return OAuthPrivateKeyJwtAuth(settings.org_url, settings.client_id, key, key_id=settings.key_id,
                                      scopes=settings.scopes, dpop=settings.dpop)
    if settings.token_file:
        return SswsAuth(read_secret_file(settings.token_file))
    return SswsAuth.from_env(TOKEN_ENV)


_governors: dict = {}
_governors_lock = threading.Lock()


def shared_governor(settings: OktaSettings) -> RateGovernor:
    """One rate governor per org and share in this process, shared by all its threads."""
    key = (settings.org_url, settings.rate_share)
    with _governors_lock:
        if key not in _governors:
            _governors[key] = RateGovernor(settings.rate_share)
        return _governors[key]


def build_client(settings: OktaSettings) -> SystemLogClient:
    return SystemLogClient(settings.org_url, resolve_auth(settings), governor=shared_governor(settings),
                           max_response_bytes=settings.max_response_bytes)
