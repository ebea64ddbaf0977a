"""How to reach an Okta org from a worker: the settings, and the credentials resolved at run time.

:class:`OktaSettings` is what travels inside the pipeline graph: the org URL,
which kind of credential, and *where* to read it (an environment variable
name, a file path or URI) - never a secret itself, so nothing sensitive ends
up in pipeline options, display data or a Dataflow job description. Each
worker reads the secret when its DoFn starts (:func:`build_client`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from okta_client import OAuthPrivateKeyJwtAuth, SswsAuth, SystemLogClient
from okta_client.errors import ConfigurationError
from okta_client.ratelimit import RateGovernor
from okta_client.urls import org_host
from storage import secrets

TOKEN_ENV = "OKTA_API_TOKEN"
PRIVATE_KEY_ENV = "OKTA_OAUTH_PRIVATE_KEY"


@dataclass(frozen=True)
class OktaSettings:
    org_url: str
    token_file: str | None = None  # SSWS token in a file (local path, gs://, s3://)
    token_env: str | None = None  # SSWS token in this environment variable (default OKTA_API_TOKEN)
    client_id: str | None = None  # set -> OAuth private_key_jwt instead of SSWS
    private_key_file: str | None = None  # PEM or JWK (local path, gs://, s3://)
    key_id: str | None = None
    private_key_env: str | None = None  # OAuth key in this environment variable (default OKTA_OAUTH_PRIVATE_KEY)
    scopes: tuple = ("okta.logs.read",)
    dpop: bool = False
    rate_share: float = 1.0
    page_limit: int = 1000
    filter: str = ""  # SCIM filter pushed down to Okta ("" = none)
    max_response_bytes: int = 64 * 1024 * 1024

    @property
    def org(self) -> str:
        """The org's host: the ``okta_org`` column of its rows."""
        return org_host(self.org_url)

    @property
    def uses_oauth(self) -> bool:
        return bool(self.client_id)

    def describe(self) -> str:
        how = f"OAuth client {self.client_id}" + (" + DPoP" if self.dpop else "") if self.uses_oauth else "SSWS token"
        return f"{self.org_url} ({how}, rate share {self.rate_share:g})"


def read_secret_file(path: str, fresh: bool = False) -> str:
    """A secret from a local file, gs://, s3:// or a Secret Manager name (:mod:`storage.secrets`), read once
    per process unless ``fresh``."""
    try:
        return secrets.read_secret(path, fresh)
    except secrets.SecretUnreadable as exc:
        raise ConfigurationError(str(exc)) from None


def resolve_auth(settings: OktaSettings, fresh: bool = False):
    """The credential, from the environment or the file the settings name (read anew when ``fresh``)."""
    if settings.uses_oauth:
        if settings.private_key_file:
            key = read_secret_file(settings.private_key_file, fresh)
        else:
            variable = settings.private_key_env or PRIVATE_KEY_ENV
            key = os.environ.get(variable, "")
            if not key.strip():
                raise ConfigurationError(
                    f"OAuth needs the private key: --okta_private_key_file or the {variable} variable")
        return OAuthPrivateKeyJwtAuth(settings.org_url, settings.client_id, key, key_id=settings.key_id,
                                      scopes=settings.scopes, dpop=settings.dpop)
    if settings.token_file:
        return SswsAuth(read_secret_file(settings.token_file, fresh))
    return SswsAuth.from_env(settings.token_env or TOKEN_ENV)


_governors: dict = {}
_governors_lock = threading.Lock()


def shared_governor(settings: OktaSettings) -> RateGovernor:
    """One rate governor per org and share in this process, shared by all its threads."""
    key = (settings.org_url, settings.rate_share)
    with _governors_lock:
        if key not in _governors:
            _governors[key] = RateGovernor(settings.rate_share)
        return _governors[key]


def build_client(settings: OktaSettings, fresh_credential: bool = False, on_event=None,
                 stop=None) -> SystemLogClient:
    """A client of the org, sharing the process's rate governor of the org; ``fresh_credential`` reads the
    credential anew (a reader starting over after a refusal); ``on_event`` and ``stop``: see
    :class:`okta_client.client.SystemLogClient`."""
    return SystemLogClient(settings.org_url, resolve_auth(settings, fresh_credential),
                           governor=shared_governor(settings), on_event=on_event, stop=stop,
                           max_response_bytes=settings.max_response_bytes)
