"""A client for the Okta System Log API (``/api/v1/logs``), usable without Beam.

It follows Okta's contract (docs/okta-system-log.md): pages come
only from ``Link rel="next"`` URLs, polling chains end at a short page,
pacing follows the ``X-Rate-Limit-*`` headers, and a 429 waits for the
window's reset instead of sleeping a fixed second.

    from okta_client import SystemLogClient, SswsAuth
    client = SystemLogClient("https://acme.okta.com", SswsAuth.from_env())
    for page in client.bounded_pages("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"):
        print(len(page.events), page.next_url)
"""

from okta_client.auth import OAuthPrivateKeyJwtAuth, SswsAuth  # noqa: F401
from okta_client.client import Page, SystemLogClient  # noqa: F401
from okta_client.errors import (  # noqa: F401
    ConfigurationError,
    OktaApiError,
    QueryTimeout,
    ResponseTooLarge,
    UnsafeUrl,
)
from okta_client.ratelimit import RateGovernor  # noqa: F401
