"""Deterministic, realistic Okta System Log events (for ``make run``, benchmarks and tests).

The shapes follow real LogEvents (see ../shared/fixtures/real-okta/): every
top-level object, sometimes null or missing, ``client.zone`` as the string
"null", open maps in ``debugContext.debugData``, 0-3 targets. About a quarter
of the events are of the two Okta Personal types (no public sample of those
exists, so they are built from the documented field list). The same seed
always gives the same events, byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import random
import uuid as _uuid
from collections.abc import Iterator

import orjson

PERSONAL_TYPES = (
    "personal.admin.configuration.update",
    "personal.user.app_migration.export",
)

OTHER_TYPES = (
    "user.session.start",
    "user.authentication.sso",
    "user.authentication.auth_via_mfa",
    "policy.evaluate_sign_on",
    "app.oauth2.as.token.grant.access_token",
    "user.session.end",
    "system.api_token.create",
    "user.account.update_profile",
    "group.user_membership.add",
    "application.user_membership.add",
)

# More real System Log types, for exports that hold many (``types=`` > 12): a page
# from a real org holds dozens.
MORE_TYPES = (
    "user.authentication.verify", "user.authentication.sso", "user.mfa.factor.activate",
    "user.mfa.factor.deactivate", "user.mfa.okta_verify.deny_push", "user.lifecycle.create",
    "user.lifecycle.activate", "user.lifecycle.deactivate", "user.lifecycle.suspend",
    "user.lifecycle.unsuspend", "user.lifecycle.delete.initiated", "user.account.lock",
    "user.account.unlock", "user.account.reset_password", "user.account.update_password",
    "user.account.privilege.grant", "user.account.privilege.revoke", "user.session.clear",
    "user.session.access_admin_app", "user.authentication.authenticate",
    "user.authentication.slo", "user.authentication.auth_via_radius",
    "user.authentication.auth_via_social", "user.credential.enroll",
    "group.user_membership.remove", "group.lifecycle.create", "group.lifecycle.delete",
    "group.profile.update", "group.application_assignment.add",
    "application.user_membership.remove", "application.user_membership.update",
    "application.lifecycle.create", "application.lifecycle.update",
    "application.lifecycle.activate", "application.lifecycle.deactivate",
    "application.provision.user.push", "application.provision.user.sync",
    "app.oauth2.as.authorize", "app.oauth2.as.authorize.code",
    "app.oauth2.as.token.grant.id_token", "app.oauth2.as.token.grant.refresh_token",
    "app.oauth2.token.revoke", "app.saml.sso.request", "app.inbound_del_auth.login_success",
    "policy.lifecycle.update", "policy.rule.update", "policy.evaluate_sign_on",
    "system.org.rate_limit.warning", "system.org.rate_limit.violation",
    "system.email.send_factor_verify_message.sent_message",
    "system.sms.send_factor_verify_message", "system.push.send_factor_verify_push",
    "system.api_token.revoke", "system.import.user.create", "zone.update", "zone.make_blacklist",
    "security.threat.detected", "security.request.blocked", "device.enrollment.create",
    "device.lifecycle.activate", "directory.app_user_profile.update", "iam.role.create",
)

_BROWSERS = (
    ("CHROME", "Mac OS X", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    ("FIREFOX", "Windows 10", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 "
     "Firefox/133.0"),
    ("SAFARI", "iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
    ("UNKNOWN", "Unknown", "okta-sdk-python/2.9.0 python/3.11.7 Linux/6.1"),
    ("EDGE", "Windows 11", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70"),
)
_PLACES = (
    ("United States", "California", "San Francisco", "94107", 37.77, -122.41),
    ("United States", "New York", "New York", "10013", 40.72, -74.0),
    ("Canada", "Ontario", "Toronto", "M4M", 43.65, -79.34),
    ("Germany", "Berlin", "Berlin", "10115", 52.52, 13.4),
    ("Japan", "Tokyo", "Tokyo", "100-0001", 35.68, 139.76),
    ("Brazil", "Sao Paulo", "São Paulo", "01000", -23.55, -46.63),
)
_FIRST = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger")
_LAST = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
         "Allen", "Dijkstra")
_APPS = ("Salesforce", "Slack", "GitHub", "Zoom", "Workday", "Atlassian Cloud", "Google Workspace",
         "Box", "Dropbox", "ServiceNow")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class EventGenerator:
    """Yields LogEvent dicts; ``personal_share`` of them are personal.* types."""

    def __init__(self, seed: int = 7, start: str = "2026-11-17T00:00:00Z",
                 end: str = "2026-11-20T00:00:00Z", personal_share: float = 0.25,
                 max_targets: int = 3, domain: str = "acme.example.com", types: int = 0):
        """``types`` > 0: draw the other (non-personal) types from that many distinct
        System Log types (2 personal + ``types - 2`` others, at most 2 + 71)."""
        self.rng = random.Random(seed)
        if types:
            pool = tuple(dict.fromkeys(OTHER_TYPES + MORE_TYPES))
            if not 3 <= types <= len(pool) + 2:
                raise ValueError(f"types must be between 3 and {len(pool) + 2}")
            self.other_types = pool[: types - 2]
        else:
            self.other_types = OTHER_TYPES
        self.start_us = _to_us(start)
        self.end_us = _to_us(end)
        if self.end_us <= self.start_us:
            raise ValueError("end must be after start")
        self.personal_share = personal_share
        self.max_targets = max_targets
        self.domain = domain
        users = []
        for i in range(200):
            first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
            users.append((self._okta_id("00u"), f"{first.lower()}.{last.lower()}{i}@{domain}",
                          f"{first} {last}"))
        self.users = users
        self.apps = [(self._okta_id("0oa"), name) for name in _APPS]
        self.org_id = self._okta_id("00o")

    def _okta_id(self, prefix: str) -> str:
        return prefix + "".join(self.rng.choice(_ALPHABET) for _ in range(17))

    def events(self, n: int, published_sorted: bool = True) -> Iterator[dict]:
        """``n`` events spread over [start, end), in published order when asked."""
        rng = self.rng
        span = self.end_us - self.start_us
        if published_sorted:
            step = span / max(n, 1)
            times = (self.start_us + int(i * step + rng.random() * step) for i in range(n))
        else:
            times = (self.start_us + rng.randrange(span) for _ in range(n))
        for published_us in times:
            yield self.event(published_us)

    def event(self, published_us: int, event_type: str | None = None) -> dict:
        rng = self.rng
        if event_type is None:
            personal = rng.random() < self.personal_share
            event_type = rng.choice(PERSONAL_TYPES if personal else self.other_types)
        user_id, login, name = rng.choice(self.users)
        browser, os_name, raw_ua = rng.choice(_BROWSERS)
        country, state, city, postal, lat, lon = rng.choice(_PLACES)
        ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        geo = {"city": city, "state": state, "country": country, "postalCode": postal,
               "geolocation": {"lat": lat, "lon": lon}}
        personal = event_type.startswith("personal.")
        failed = rng.random() < 0.05
        event = {
            "uuid": str(_uuid.UUID(int=rng.getrandbits(128), version=4)),
            "published": _format_us(published_us),
            "eventType": event_type,
            "version": "0",
            "severity": "WARN" if failed else "INFO",
            "displayMessage": _DISPLAY.get(event_type, event_type.replace(".", " ").capitalize()),
            "legacyEventType": None if personal else f"core.{event_type}",
            "actor": {"id": user_id, "type": "User", "alternateId": login, "displayName": name,
                      "detailEntry": None},
            "client": {
                "userAgent": {"rawUserAgent": raw_ua, "os": os_name, "browser": browser},
                "zone": "null",
                "device": "Computer" if browser != "SAFARI" else "Mobile",
                "id": None,
                "ipAddress": ip,
                "geographicalContext": geo if rng.random() > 0.05 else None,
            },
            "device": None,
            "authenticationContext": {
                "authenticationProvider": None, "credentialProvider": None,
                "credentialType": None, "issuer": None, "interface": None,
                "authenticationStep": 0,
                "externalSessionId": "102" + "".join(rng.choice(_ALPHABET) for _ in range(22)),
            },
            "outcome": {"result": "FAILURE" if failed else "SUCCESS",
                        "reason": "INVALID_CREDENTIALS" if failed else None},
            "target": self._targets(event_type, login, name),
            "transaction": {"type": "WEB", "id": "".join(rng.choice(_ALPHABET) for _ in range(27)),
                            "detail": {}},
            "debugContext": {"debugData": {
                "requestId": "".join(rng.choice(_ALPHABET) for _ in range(27)),
                "requestUri": _URIS.get(event_type, "/api/v1/users"),
                "url": _URIS.get(event_type, "/api/v1/users") + "?",
            }},
            "request": {"ipChain": [{"ip": ip, "geographicalContext": geo, "version": "V4",
                                     "source": None}]},
            "securityContext": {"asNumber": rng.randrange(1000, 65000), "asOrg": "example isp",
                                "isp": "example isp", "domain": "example.net",
                                "isProxy": rng.random() < 0.03},
        }
        roll = rng.random()
        if roll < 0.02:
            event["outcome"] = None
        elif roll < 0.04:
            del event["securityContext"]
        elif roll < 0.06:
            event["client"] = None
        return event

    def _targets(self, event_type: str, login: str, name: str):
        rng = self.rng
        most = 1 if event_type == "personal.admin.configuration.update" else self.max_targets
        count = rng.randrange(0, most + 1)
        if count == 0:
            return rng.choice((None, [], "missing"))
        targets = []
        for _ in range(count):
            if event_type == "personal.admin.configuration.update":
                targets.append({"id": self.org_id, "type": "Org", "alternateId": self.domain,
                                "displayName": "Okta Personal app migration", "detailEntry": None})
            elif event_type == "personal.user.app_migration.export":
                app_id, app = rng.choice(self.apps)
                targets.append({"id": app_id, "type": "AppInstance", "alternateId": app,
                                "displayName": app, "detailEntry": {"exportedTo": "Okta Personal"}})
            else:
                user_id, tlogin, tname = rng.choice(self.users)
                targets.append({"id": user_id, "type": "User", "alternateId": tlogin,
                                "displayName": tname, "detailEntry": None})
        return targets


_DISPLAY = {
    "personal.admin.configuration.update": "Okta Personal app migration setting updated",
    "personal.user.app_migration.export": "User exported apps to Okta Personal",
    "user.session.start": "User login to Okta",
    "user.authentication.sso": "User single sign on to app",
}
_URIS = {
    "personal.admin.configuration.update": "/api/v1/orgs/personal/settings",
    "personal.user.app_migration.export": "/api/v1/personal/apps/export",
    "user.session.start": "/idp/idx/identify",
}


def _to_us(text: str) -> int:
    parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond


def _format_us(us: int) -> str:
    moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _drop_missing_targets(event: dict) -> dict:
    if event.get("target") == "missing":
        del event["target"]
    return event


def export_lines(n: int, seed: int = 7, duplicate_rate: float = 0.005, bad_line_rate: float = 0.0005,
                 published_sorted: bool = True, **kwargs) -> Iterator[bytes]:
    """JSON Lines of an export: ``n`` events, some re-sent (at-least-once), a few bad lines.

    ``published_sorted=False`` writes them in random ``published`` order, like an
    export merged from several sources (each batch then touches many partitions).
    """
    generator = EventGenerator(seed=seed, **kwargs)
    rng = random.Random(seed + 1)
    recent: list[bytes] = []
    for event in generator.events(n, published_sorted=published_sorted):
        line = orjson.dumps(_drop_missing_targets(event))
        yield line
        recent.append(line)
        if len(recent) > 500:
            recent.pop(0)
        if rng.random() < duplicate_rate:
            yield rng.choice(recent)
        if rng.random() < bad_line_rate:
            yield rng.choice(_BAD_LINES)


_BAD_LINES = (
    b'{"uuid": "truncated-by-a-crash", "published": "2026-11-18T10:0',
    b"this is not json",
    b'["an array of one string"]',
    b'{"eventType": "personal.user.app_migration.export", "published": "2026-11-18T10:00:00Z"}',
    b'{"uuid": "bad-time", "eventType": "personal.user.app_migration.export", "published": "yesterday"}',
)


def generated_events(n: int, seed: int = 7, **kwargs) -> list[dict]:
    """``n`` events as dicts (no duplicates, no bad lines), for tests and servers."""
    generator = EventGenerator(seed=seed, **kwargs)
    return [_drop_missing_targets(e) for e in generator.events(n)]
