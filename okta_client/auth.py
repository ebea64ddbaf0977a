"""Credentials for the System Log API: an SSWS API token, or OAuth 2.0 with private_key_jwt (+ DPoP).

Okta recommends OAuth for service integrations: a service app authenticates
with a JWT signed by its private key (``private_key_jwt``, RFC 7523), asks
``{org}/oauth2/v1/token`` for a token with scope ``okta.logs.read``, and
caches it until shortly before it expires. When the app requires DPoP
(RFC 9449) every request also carries a proof JWT signed with a key pair made
for this client, and the first token request is answered with
``use_dpop_nonce``: the client retries once with the nonce the server gave.

No credential ever appears in a ``repr``, a log line or an exception.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from okta_client.errors import ConfigurationError, OktaApiError

DEFAULT_SCOPES = ("okta.logs.read",)
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Auth:
    """What the client asks of a credential."""

    def headers(self, session, method: str, url: str) -> dict:
        raise NotImplementedError

    def on_response(self, response) -> bool:
        """Look at an API response; True means 'send the same request again now'."""
        return False

    def invalidate(self) -> None:
        """The server rejected the credential (401): drop anything cached."""


class SswsAuth(Auth):
    """``Authorization: SSWS <token>``: an Okta API token."""

    def __init__(self, token: str):
        token = (token or "").strip()
        if not token:
            raise ConfigurationError("the Okta API token is empty")
        self._token = token

    @classmethod
    def from_env(cls, variable: str = "OKTA_API_TOKEN") -> SswsAuth:
        value = os.environ.get(variable, "")
        if not value.strip():
            raise ConfigurationError(f"no Okta API token: set {variable} or give a token file")
        return cls(value)

    def headers(self, session, method: str, url: str) -> dict:
        return {"Authorization": f"SSWS {self._token}"}

    def __repr__(self) -> str:
        return "SswsAuth(token=<redacted>)"


def load_private_key(text: str, key_id: str | None = None):
    """A PEM or JWK private key -> (key, algorithm, kid). Errors never echo the key."""
    text = (text or "").strip()
    if not text:
        raise ConfigurationError("the OAuth private key is empty")
    try:
        if text.startswith("{"):
            jwk = json.loads(text)
            if jwk.get("kty") == "RSA":
                key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
            elif jwk.get("kty") == "EC":
                key = jwt.algorithms.ECAlgorithm.from_jwk(jwk)
            else:
                raise ConfigurationError("the OAuth private key JWK must have kty RSA or EC")
            key_id = key_id or jwk.get("kid")
        else:
            key = serialization.load_pem_private_key(text.encode(), password=None)
    except ConfigurationError:
        raise
    except Exception as exc:  # noqa: BLE001 - say what kind of failure, never the key
        raise ConfigurationError(f"the OAuth private key cannot be read ({exc.__class__.__name__}); "
                                 "give an unencrypted PEM or a JWK with its private part") from None
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = "ES256"
    else:
        raise ConfigurationError("the OAuth private key must be an RSA or EC (P-256) private key")
    return key, algorithm, key_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OAuthPrivateKeyJwtAuth(Auth):
    """OAuth 2.0 client credentials with ``private_key_jwt``, optionally DPoP-bound."""

    def __init__(self, org_url: str, client_id: str, private_key: str, *, key_id: str | None = None,
                 scopes=DEFAULT_SCOPES, dpop: bool = False, clock=time.time):
        if not client_id:
            raise ConfigurationError("OAuth needs the service app's client id")
        self.org_url = org_url.rstrip("/")
        self.token_url = f"{self.org_url}/oauth2/v1/token"
        self.client_id = client_id
        self._key, self._algorithm, self.key_id = load_private_key(private_key, key_id)
        self.scopes = tuple(scopes)
        self.dpop = dpop
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_type = "Bearer"
        self._expires_at = 0.0
        self._nonce: str | None = None
        self.tokens_fetched = 0
        if dpop:
            self._dpop_key = ec.generate_private_key(ec.SECP256R1())
            numbers = self._dpop_key.public_key().public_numbers()
            self._dpop_jwk = {"kty": "EC", "crv": "P-256",
                              "x": _b64(numbers.x.to_bytes(32, "big")),
                              "y": _b64(numbers.y.to_bytes(32, "big"))}

    def __repr__(self) -> str:
        return f"OAuthPrivateKeyJwtAuth(client_id={self.client_id!r}, dpop={self.dpop}, key=<redacted>)"

    def _assertion(self) -> str:
        now = int(self._clock())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                  "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)

    def _proof(self, method: str, url: str, access_token: str | None = None) -> str:
        parts = urlsplit(url)
        claims = {"htm": method, "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                  "iat": int(self._clock()), "jti": str(uuid.uuid4())}
        if self._nonce:
            claims["nonce"] = self._nonce
        if access_token:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode()).digest())
        return jwt.encode(claims, self._dpop_key, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": self._dpop_jwk})

    def _fetch_token(self, session) -> None:
        form = {"grant_type": "client_credentials", "scope": " ".join(self.scopes),
                "client_assertion_type": CLIENT_ASSERTION_TYPE}
        for attempt in range(2):
            form["client_assertion"] = self._assertion()
            headers = {"Accept": "application/json"}
            if self.dpop:
                headers["DPoP"] = self._proof("POST", self.token_url)
            response = session.post(self.token_url, data=form, headers=headers, timeout=(10, 30))
            body = _json(response)
            if (response.status_code == 400 and self.dpop and body.get("error") == "use_dpop_nonce"
                    and attempt == 0 and response.headers.get("DPoP-Nonce")):
                self._nonce = response.headers["DPoP-Nonce"]
                continue
            if response.status_code != 200 or "access_token" not in body:
                error = body.get("error") or body.get("errorCode") or "unexpected answer"
                detail = body.get("error_description") or body.get("errorSummary") or ""
                raise OktaApiError("POST", self.token_url, response.status_code, str(error),
                                   f"the OAuth token request was refused: {detail}".rstrip(": "))
            self._token = body["access_token"]
            self._token_type = body.get("token_type", "Bearer")
            self._expires_at = self._clock() + float(body.get("expires_in", 3600))
            self.tokens_fetched += 1
            if response.headers.get("DPoP-Nonce"):
                self._nonce = response.headers["DPoP-Nonce"]
            return

    def headers(self, session, method: str, url: str) -> dict:
        with self._lock:
            if self._token is None or self._clock() > self._expires_at - 60:
                self._fetch_token(session)
            token, token_type = self._token, self._token_type
            headers = {"Authorization": f"{token_type} {token}"}
            if self.dpop:
                headers["DPoP"] = self._proof(method, url, token)
            return headers

    def on_response(self, response) -> bool:
        if not self.dpop:
            return False
        nonce = response.headers.get("DPoP-Nonce")
        challenge = response.headers.get("WWW-Authenticate", "")
        if nonce:
            with self._lock:
                changed = nonce != self._nonce
                self._nonce = nonce
            return response.status_code == 401 and "use_dpop_nonce" in challenge and changed
        return False

    def invalidate(self) -> None:
        with self._lock:
            self._token = None


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
