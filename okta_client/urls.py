"""URL rules: HTTPS to the org only (plain HTTP only on loopback), and next links on the same origin."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from okta_client.errors import UnsafeUrl

LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_org_url(url: str) -> str:
    """The org's base URL (scheme://host[:port]), or :class:`UnsafeUrl` with the reason."""
    if not url or not isinstance(url, str):
        raise UnsafeUrl("the Okta org URL is empty")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeUrl(f"the Okta org URL must look like https://your-org.okta.com, got {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UnsafeUrl(
            f"the Okta org URL must use https (plain http is accepted only for a loopback test server): {url!r}"
        )
    if parts.username or parts.password:
        raise UnsafeUrl("the Okta org URL must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeUrl(f"the Okta org URL is the bare origin (no path or query), got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def org_host(url: str) -> str:
    """The org's host (with the port when it has one), as the ``okta_org`` column holds it: ``acme.okta.com``."""
    return urlsplit(normalise_org_url(url)).netloc.lower()


def same_origin(url: str, org_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(org_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def check_next_link(url: str, org_url: str) -> str:
    """A ``next`` link must point back at the org's own logs endpoint."""
    if not same_origin(url, org_url):
        raise UnsafeUrl(f"refusing the next link {url}: it points at another origin ({urlsplit(url).netloc!r}) "
                        f"and credentials are only ever sent to {org_url}")
    if urlsplit(url).path != "/api/v1/logs":
        raise UnsafeUrl(f"refusing a next link outside /api/v1/logs: {urlsplit(url).path!r}")
    return url
