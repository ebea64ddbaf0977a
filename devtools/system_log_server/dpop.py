"""DPoP (RFC 9449): verifying proof JWTs, JWK thumbprints (RFC 7638) and the server's nonces."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass

import jwt

from devtools.system_log_server.replay import ExpiringSet

ALGORITHMS = ("RS256", "ES256")
MAX_AGE_SECONDS = 60
NONCE_TTL_SECONDS = 300
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


class DPoPError(ValueError):
    """The proof is missing, malformed, badly signed, stale, replayed or for another request."""


@dataclass(frozen=True)
class Proof:
    thumbprint: str
    nonce: str | None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: dict) -> str:
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))
    if members is None or any(not isinstance(jwk.get(name), str) for name in members):
        raise DPoPError("the jwk must be an RSA or EC public key")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim: base64url(SHA-256(access token))."""
    return b64url(hashlib.sha256(access_token.encode()).digest())


class DPoPVerifier:
    def __init__(self):
        self._seen_jti = ExpiringSet()
        self._nonces = ExpiringSet()

    def issue_nonce(self) -> str:
        nonce = secrets.token_urlsafe(24)
        self._nonces.add_new(nonce, time.time() + NONCE_TTL_SECONDS)
        return nonce

    def nonce_is_valid(self, nonce: str | None) -> bool:
        return nonce is not None and nonce in self._nonces

    def verify(self, proof: str | None, method: str, url: str, access_token: str | None = None) -> Proof:
        """Check a proof for ``method url`` (and its binding to ``access_token`` when given)."""
        if not proof:
            raise DPoPError("The DPoP proof JWT header is missing.")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError as error:
            raise DPoPError("The DPoP proof is not a JWT.") from error
        jwk, algorithm = header.get("jwk"), header.get("alg")
        if header.get("typ") != "dpop+jwt":
            raise DPoPError("The DPoP proof typ must be dpop+jwt.")
        if algorithm not in ALGORITHMS:
            raise DPoPError(f"The DPoP proof alg must be one of {', '.join(ALGORITHMS)}.")
        if not isinstance(jwk, dict) or "d" in jwk:
            raise DPoPError("The DPoP proof jwk header must be a public key.")
        thumbprint = jwk_thumbprint(jwk)
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm)
            claims = jwt.decode(proof, key.key, algorithms=[algorithm],
                                options={"require": ["jti", "htm", "htu", "iat"], "verify_iat": False})
        except jwt.PyJWTError as error:
            raise DPoPError(f"The DPoP proof is invalid: {error}.") from error
        if claims["htm"] != method or claims["htu"] != url:
            raise DPoPError("The DPoP proof htm or htu does not match the request.")
        issued_at = claims["iat"]
        if not isinstance(issued_at, (int, float)) or abs(time.time() - issued_at) > MAX_AGE_SECONDS:
            raise DPoPError("The DPoP proof iat is not recent.")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise DPoPError("The DPoP proof ath does not match the access token.")
        if not self._seen_jti.add_new(str(claims["jti"]), time.time() + 2 * MAX_AGE_SECONDS):
            raise DPoPError("The DPoP proof jti has already been used.")
        nonce = claims.get("nonce")
        return Proof(thumbprint, nonce if isinstance(nonce, str) else None)
