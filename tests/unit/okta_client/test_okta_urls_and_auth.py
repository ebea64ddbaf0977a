"""URL safety rules and the credentials' JWTs, without a server."""

import base64
import hashlib
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from okta_client.auth import OAuthPrivateKeyJwtAuth, SswsAuth, load_private_key
from okta_client.errors import ConfigurationError, UnsafeUrl
from okta_client.urls import check_next_link, normalise_org_url


@pytest.mark.parametrize("url, expected", [
    ("https://acme.okta.com", "https://acme.okta.com"),
    ("https://acme.okta.com/", "https://acme.okta.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost:9", "http://localhost:9"),
    ("http://[::1]:9", "http://[::1]:9"),
])
def test_org_urls_accepted(url, expected):
    assert normalise_org_url(url) == expected


@pytest.mark.parametrize("url, reason", [
    ("http://acme.okta.com", "must use https"),
    ("http://10.0.0.5:8080", "must use https"),
    ("ftp://acme.okta.com", "must look like"),
    ("acme.okta.com", "must look like"),
    ("https://acme.okta.com/api/v1/logs", "bare origin"),
    ("https://user:pw@acme.okta.com", "must not carry credentials"),
    ("", "empty"),
])
def test_org_urls_refused(url, reason):
    with pytest.raises(UnsafeUrl, match=reason):
        normalise_org_url(url)


def test_next_links_must_stay_on_the_org():
    org = "https://acme.okta.com"
    assert check_next_link(f"{org}/api/v1/logs?after=x", org)
    with pytest.raises(UnsafeUrl, match="another origin"):
        check_next_link("https://evil.example.com/api/v1/logs?after=x", org)
    with pytest.raises(UnsafeUrl, match="another origin"):
        check_next_link("http://acme.okta.com/api/v1/logs?after=x", org)  # scheme downgrade
    with pytest.raises(UnsafeUrl, match="outside /api/v1/logs"):
        check_next_link(f"{org}/api/v1/users", org)


def rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key, pem


def test_client_assertion_is_a_private_key_jwt_for_the_token_endpoint():
    key, pem = rsa_pem()
    auth = OAuthPrivateKeyJwtAuth("https://acme.okta.com", "0oaclient", pem, key_id="kid-1")
    assertion = auth._assertion()
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256" and header["kid"] == "kid-1"
    claims = jwt.decode(assertion, key.public_key(), algorithms=["RS256"],
                        audience="https://acme.okta.com/oauth2/v1/token")
    assert claims["iss"] == claims["sub"] == "0oaclient"
    assert claims["exp"] - claims["iat"] == 300
    assert auth._assertion() != assertion  # a fresh jti every time


def test_jwk_keys_and_their_kid_are_read():
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    jwk["kid"] = "from-jwk"
    loaded, algorithm, kid = load_private_key(json.dumps(jwk))
    assert (algorithm, kid) == ("ES256", "from-jwk")


def test_dpop_proof_binds_method_url_and_token():
    _, pem = rsa_pem()
    auth = OAuthPrivateKeyJwtAuth("https://acme.okta.com", "0oaclient", pem, dpop=True)
    proof = auth._proof("GET", "https://acme.okta.com/api/v1/logs?after=abc", "tok")
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256" and "d" not in header["jwk"]
    public = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(header["jwk"]))
    claims = jwt.decode(proof, public, algorithms=["ES256"])
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://acme.okta.com/api/v1/logs"  # no query string
    digest = base64.urlsafe_b64encode(hashlib.sha256(b"tok").digest()).rstrip(b"=").decode()
    assert claims["ath"] == digest


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----", "cannot be read"),
    ('{"kty": "oct", "k": "c2VjcmV0"}', "kty RSA or EC"),
])
def test_bad_keys_are_refused_without_echoing_them(text, reason):
    with pytest.raises(ConfigurationError, match=reason) as error:
        load_private_key(text)
    assert "not a key" not in str(error.value) and "c2VjcmV0" not in str(error.value)


def test_credentials_never_show_in_repr(monkeypatch):
    monkeypatch.setenv("OKTA_API_TOKEN", "00SECRET-token-value")
    assert "SECRET" not in repr(SswsAuth.from_env())
    _, pem = rsa_pem()
    assert "PRIVATE" not in repr(OAuthPrivateKeyJwtAuth("https://a.okta.com", "cid", pem))
    monkeypatch.delenv("OKTA_API_TOKEN")
    with pytest.raises(ConfigurationError, match="OKTA_API_TOKEN"):
        SswsAuth.from_env()
