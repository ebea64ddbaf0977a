"""Authentication: SSWS API tokens, and OAuth 2.0 client credentials with private_key_jwt (plus DPoP).

``TokenEndpoint`` is ``POST /oauth2/v1/token``: it verifies the client
assertion (signature with the configured public key, iss = sub = client id,
aud = the token URL, exp in the future and at most an hour away, jti never
seen before; like Okta, the jti is spent even when the request then fails),
then the DPoP proof when DPoP is required (the nonce dance), then the scope.
``Authenticator`` checks the ``Authorization`` header of API calls; their
DPoP proofs need no nonce (one the client carries over from the token
endpoint is ignored, so a long-lived client is not cut off when it expires).
No secret is ever logged or put in an error message.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devtools.system_log_server.config import EmulatorConfig
from devtools.system_log_server.dpop import DPoPError, DPoPVerifier
from devtools.system_log_server.errors import OktaError
from devtools.system_log_server.replay import ExpiringSet

LOGS_SCOPE = "okta.logs.read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600


@dataclass(frozen=True)
class AccessToken:
    expires_at: float
    scopes: frozenset[str]
    thumbprint: str | None  # the DPoP key the token is bound to, if any


@dataclass(frozen=True)
class OAuthResponse:
    status: int
    body: dict
    headers: tuple[tuple[str, str], ...] = ()


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(error)
        self.response = OAuthResponse(status, {"error": error, "error_description": description}, headers)


def load_public_key(spec: str | dict):
    """(key, algorithm) from a PEM public key or a JWK (dict or JSON text); RSA -> RS256, EC P-256 -> ES256."""
    if isinstance(spec, dict) or spec.lstrip().startswith("{"):
        jwk = spec if isinstance(spec, dict) else json.loads(spec)
        key = jwt.PyJWK(jwk).key
    else:
        key = serialization.load_pem_public_key(spec.encode())
    if isinstance(key, rsa.RSAPublicKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    raise ValueError("the OAuth public key must be an RSA or an EC P-256 public key")


class TokenStore:
    def __init__(self):
        self._lock = threading.Lock()
        self._tokens: dict[str, AccessToken] = {}

    def issue(self, ttl: int, scopes: frozenset[str], thumbprint: str | None) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now}
            self._tokens[value] = AccessToken(now + ttl, scopes, thumbprint)
        return value

    def find(self, value: str) -> AccessToken | None:
        with self._lock:
            token = self._tokens.get(value)
        return token if token is not None and token.expires_at > time.time() else None


class TokenEndpoint:
    def __init__(self, config: EmulatorConfig, token_url: str, tokens: TokenStore, dpop: DPoPVerifier):
        self._config = config
        self._token_url = token_url
        self._tokens = tokens
        self._dpop = dpop
        self._key, self._algorithm = (load_public_key(config.oauth_public_key) if config.oauth_enabled
                                      else (None, None))
        self._seen_jti = ExpiringSet()

    def handle(self, form: dict[str, str], dpop_header: str | None) -> OAuthResponse:
        try:
            return self._issue(form, dpop_header)
        except OAuthError as error:
            return error.response

    def _issue(self, form: dict[str, str], dpop_header: str | None) -> OAuthResponse:
        if not self._config.oauth_enabled:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type",
                             "The authorization grant type is not supported by the authorization server. "
                             "Configured grant types: [client_credentials].")
        if "client_assertion" not in form:
            raise OAuthError(401, "invalid_client", "Client authentication failed. Either the client or the "
                                                    "client credentials are invalid.")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(400, "invalid_request", "The client_assertion_type is invalid.")
        self._verify_assertion(form["client_assertion"], form.get("client_id"))
        thumbprint = self._verify_dpop(dpop_header) if self._config.require_dpop else None
        requested = frozenset(form.get("scope", "").split())
        refused = sorted(requested - set(self._config.oauth_scopes))
        if not requested or refused:
            raise OAuthError(400, "invalid_scope", f"The following scopes are not allowed: {refused}"
                             if refused else "The 'scope' parameter is required.")
        ttl = self._config.token_ttl
        access_token = self._tokens.issue(ttl, requested, thumbprint)
        return OAuthResponse(200, {"token_type": "DPoP" if thumbprint else "Bearer", "expires_in": ttl,
                                   "access_token": access_token, "scope": " ".join(sorted(requested))})

    def _verify_assertion(self, assertion: str, client_id: str | None) -> None:
        expected = self._config.oauth_client_id
        if client_id is not None and client_id != expected:
            raise OAuthError(401, "invalid_client", "The client_id does not match the client_assertion.")
        try:
            claims = jwt.decode(assertion, self._key, algorithms=[self._algorithm], audience=self._token_url,
                                issuer=expected, options={"require": ["exp", "iss", "sub", "aud", "jti"]})
        except jwt.ExpiredSignatureError:
            raise OAuthError(401, "invalid_client", "The client_assertion token is expired.") from None
        except jwt.InvalidAudienceError:
            raise OAuthError(401, "invalid_client", "The audience claim for client_assertion must be the "
                                                    "endpoint invoked for the request.") from None
        except jwt.InvalidIssuerError:
            raise OAuthError(401, "invalid_client", "The issuer and subject claims of the client_assertion "
                                                    "must be the client_id.") from None
        except jwt.InvalidSignatureError:
            raise OAuthError(401, "invalid_client", "The client_assertion signature is invalid.") from None
        except jwt.MissingRequiredClaimError as error:
            raise OAuthError(401, "invalid_client",
                             f"The client_assertion token is missing the '{error.claim}' claim.") from None
        except jwt.PyJWTError:
            raise OAuthError(401, "invalid_client", "The client_assertion token is invalid.") from None
        if claims["sub"] != expected:
            raise OAuthError(401, "invalid_client", "The issuer and subject claims of the client_assertion "
                                                    "must be the client_id.")
        if claims["exp"] - time.time() > MAX_ASSERTION_LIFETIME:
            raise OAuthError(401, "invalid_client",
                             "The client_assertion token has an expiration too far into the future.")
        if not self._seen_jti.add_new(str(claims["jti"]), float(claims["exp"])):
            raise OAuthError(401, "invalid_client", "The client_assertion token has already been used.")

    def _verify_dpop(self, dpop_header: str | None) -> str:
        try:
            proof = self._dpop.verify(dpop_header, "POST", self._token_url)
        except DPoPError as error:
            raise OAuthError(400, "invalid_dpop_proof", str(error)) from None
        if not self._dpop.nonce_is_valid(proof.nonce):
            raise OAuthError(400, "use_dpop_nonce", "Authorization server requires nonce in DPoP proof.",
                             headers=(("DPoP-Nonce", self._dpop.issue_nonce()),))
        return proof.thumbprint


class Authenticator:
    """Checks API calls: ``SSWS <token>``, ``Bearer <token>`` or ``DPoP <token>`` with a proof."""

    def __init__(self, config: EmulatorConfig, tokens: TokenStore, dpop: DPoPVerifier):
        self._api_token = config.token
        self._oauth = config.oauth_enabled
        self._tokens = tokens
        self._dpop = dpop

    @property
    def required(self) -> bool:
        return bool(self._api_token) or self._oauth

    def set_api_token(self, token: str) -> None:
        """Replace the accepted SSWS token (an admin revoking the old one: its calls now get 401)."""
        self._api_token = token

    def check(self, authorization: str | None, dpop_header: str | None, method: str, url: str) -> None:
        """Raises OktaError 401 (bad or missing credentials) or 403 (token without okta.logs.read)."""
        if not self.required:
            return
        scheme, credential = split_authorization(authorization)
        if scheme == "SSWS" and self._api_token and hmac.compare_digest(credential.encode(),
                                                                         self._api_token.encode()):
            return
        token = self._tokens.find(credential) if self._oauth and scheme in ("Bearer", "DPoP") else None
        if token is None or (scheme == "Bearer") != (token.thumbprint is None):
            raise OktaError(401, "E0000011")
        if token.thumbprint is not None:
            try:
                proof = self._dpop.verify(dpop_header, method, url, access_token=credential)
            except DPoPError as error:
                raise OktaError(401, "E0000011", headers=(("WWW-Authenticate", _dpop_challenge(str(error))),)
                                ) from None
            if not hmac.compare_digest(proof.thumbprint, token.thumbprint):
                raise OktaError(401, "E0000011", headers=(("WWW-Authenticate", _dpop_challenge(
                    "The DPoP proof key is not the key the access token is bound to.")),))
        if LOGS_SCOPE not in token.scopes:
            raise OktaError(403, "E0000006", headers=(("WWW-Authenticate", (
                f'Bearer error="insufficient_scope", error_description="The access token provided does not '
                f'contain the required scopes.", scope="{LOGS_SCOPE}"')),))


def split_authorization(header: str | None) -> tuple[str | None, str]:
    """(scheme, credential) of an Authorization header, with SSWS, Bearer and DPoP spelled canonically.

    ``SSWS`` may be glued to the token: the official Python SDK 3.4.6 sends
    ``SSWS<token>`` on its generated API calls (its default mode), so Okta
    presumably accepts that spelling.
    """
    header = (header or "").strip()
    if header[:4].upper() == "SSWS":
        return "SSWS", header[4:].strip()
    scheme, _, credential = header.partition(" ")
    canonical = {"bearer": "Bearer", "dpop": "DPoP"}.get(scheme.lower(), scheme)
    return canonical or None, credential.strip()


def _dpop_challenge(description: str) -> str:
    return f'DPoP algs="RS256 ES256", error="invalid_dpop_proof", error_description="{description}"'
