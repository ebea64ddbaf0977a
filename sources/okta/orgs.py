"""The orgs of a many-org run (``--orgs=FILE``): parsed, checked, and turned into one :class:`OrgSpec` each.

The file (local, ``gs://``, ``s3://``; YAML or JSON) is a list of orgs, or ``{"orgs": [...]}``::

    orgs:
      - url: https://acme.okta.com
        token_env: OKTA_TOKEN_ACME          # or token_file: (a file, gs://, s3://, or a Secret Manager name)
        rate_share: 0.5                     # optional, default --okta_rate_share
        event_types: personal.*             # optional, default --event_types
        state: gs://b/state/acme.json       # optional, default <--state folder>/<host>.json
      - url: https://beta.okta.com
        client_id: 0oa...                   # OAuth private_key_jwt
        private_key_file: projects/p/secrets/beta-key   # or private_key_env: VAR

A credential is always a *reference* (a variable name, a file, a secret name); a key that holds a
secret itself (``token``, ``api_token``, ``private_key``, ...) is refused. ``--okta_org_url`` alone is
the one-org list (:func:`single_org`). Beam-free: :mod:`pipeline.options` validates with it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from common.errors import LakeError
from okta_client.errors import UnsafeUrl
from okta_client.urls import normalise_org_url, org_host
from sources.okta.connect import OktaSettings

_CREDENTIAL_KEYS = ("token_env", "token_file", "client_id", "private_key_file", "private_key_env", "key_id")
_KEYS = {"url", "rate_share", "event_types", "state", "scopes", "dpop", *_CREDENTIAL_KEYS}
#: Keys that would hold a secret inline: refused, whatever their value.
_INLINE_SECRETS = {"token", "api_token", "ssws", "secret", "password", "private_key", "client_secret", "key"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class OrgsFileError(LakeError, ValueError):
    """The orgs file cannot be read or parsed (one line)."""


@dataclass(frozen=True)
class OrgSpec:
    """One org of the run: how to reach it, what to keep, where its cursor lives."""

    settings: OktaSettings
    event_types: str
    state: str | None  # its cursor file (incremental and streaming runs)

    @property
    def host(self) -> str:
        return self.settings.org


def state_file(state_dir: str, host: str) -> str:
    """The default cursor file of an org: ``<state dir>/<host>.json`` (``:`` of a port as ``_``)."""
    from storage import fs

    return fs.join(state_dir.rstrip("/"), host.replace(":", "_") + ".json")


def load_document(uri: str):
    """The orgs file's content (YAML or JSON; JSON is YAML, but its errors read better as JSON)."""
    from storage import fs

    try:
        data = fs.read_bytes(uri)
    except Exception as exc:  # noqa: BLE001 - missing file, no access, bad scheme: one line
        raise OrgsFileError(f"cannot be read: {exc.__class__.__name__}: {str(exc)[:200]}") from None
    text = data.decode("utf-8", "replace")
    if uri.lower().endswith(".json") or text.lstrip().startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OrgsFileError(f"is not valid JSON: {exc}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OrgsFileError(f"is not valid YAML: {str(exc).splitlines()[0]}") from None


def parse_orgs(document, *, default_event_types: str, default_rate_share: float, state_dir: str | None,
               page_limit: int = 1000, filter_pushdown: bool = True) -> tuple[list[OrgSpec], list[str]]:
    """``(orgs, problems)``: every problem of the document on one line, naming the org it is about."""
    from transforms.selection import EventTypeSelection

    entries = document.get("orgs") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        return [], ["must hold a non-empty list of orgs (a list, or {\"orgs\": [...]})"]
    orgs, problems, hosts = [], [], {}
    for number, entry in enumerate(entries):
        where = f"orgs[{number}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping with at least url and a credential")
            continue
        try:
            url = normalise_org_url(entry.get("url") or "")
            host = org_host(url)
            where = f"{where} ({host})"
        except UnsafeUrl as exc:
            problems.append(f"{where}: url: {exc}")
            continue
        found = []
        for key in sorted(entry):
            if str(key).lower() in _INLINE_SECRETS:
                found.append(f"{where}: {key!r} would hold a secret inline; refer to it instead (token_env, "
                             "token_file, or client_id with private_key_file / private_key_env)")
            elif key not in _KEYS:
                found.append(f"{where}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        if host in hosts:
            found.append(f"{where}: the same org as orgs[{hosts[host]}]")
        hosts.setdefault(host, number)
        if not any(str(key).lower() in _INLINE_SECRETS for key in entry):  # that one line says enough
            found += _credential_problems(entry, where)
        share = entry.get("rate_share", default_rate_share)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            found.append(f"{where}: rate_share must be more than 0 and at most 1, got {share!r}")
        event_types = entry.get("event_types", default_event_types)
        if isinstance(event_types, list):
            event_types = ",".join(str(t) for t in event_types)
        try:
            selection = EventTypeSelection.parse(str(event_types))
        except ValueError as exc:
            found.append(f"{where}: event_types: {exc}")
            selection = None
        state = entry.get("state") or (state_file(state_dir, host) if state_dir else None)
        if found:
            problems += found
            continue
        settings = OktaSettings(
            org_url=url, token_file=entry.get("token_file"), token_env=entry.get("token_env"),
            client_id=entry.get("client_id"), private_key_file=entry.get("private_key_file"),
            private_key_env=entry.get("private_key_env"), key_id=entry.get("key_id"),
            scopes=tuple(str(entry.get("scopes", "okta.logs.read")).split()), dpop=bool(entry.get("dpop", False)),
            rate_share=float(share), page_limit=page_limit,
            filter=selection.scim_filter() if filter_pushdown and selection else "")
        orgs.append(OrgSpec(settings, str(event_types), state))
    states = {}
    for org in orgs:
        if org.state and org.state in states:
            problems.append(f"{org.host}: state {org.state} is also {states[org.state]}'s; each org needs its own")
        states.setdefault(org.state, org.host)
    return orgs, problems


def _credential_problems(entry: dict, where: str) -> list[str]:
    token_env, token_file = entry.get("token_env"), entry.get("token_file")
    client_id = entry.get("client_id")
    key_file, key_env = entry.get("private_key_file"), entry.get("private_key_env")
    problems = []
    for key in ("token_env", "private_key_env"):
        value = entry.get(key)
        if value is not None and not (isinstance(value, str) and _ENV_NAME.fullmatch(value)):
            # Never echo the value: someone may have pasted the secret itself.
            problems.append(f"{where}: {key} must name an environment variable (letters, digits, _), "
                            "not hold a value")
    if client_id:
        if token_env or token_file:
            problems.append(f"{where}: give either client_id (OAuth) or token_env / token_file, not both")
        if bool(key_file) == bool(key_env):
            problems.append(f"{where}: OAuth (client_id) needs exactly one of private_key_file, private_key_env")
    else:
        if key_file or key_env or entry.get("key_id"):
            problems.append(f"{where}: private_key_file / private_key_env / key_id need client_id (OAuth)")
        if bool(token_env) == bool(token_file):
            problems.append(f"{where}: give exactly one credential reference: token_env or token_file "
                            "(or client_id with a private key)")
    if problems:
        return problems
    return [f"{where}: {p}" for p in credential_unavailable(entry)]


def credential_unavailable(entry: dict) -> list[str]:
    """Is the credential where the entry says? (Checked before the run; read again by each worker.)"""
    from okta_client.errors import ConfigurationError
    from sources.okta.connect import read_secret_file

    for key in ("token_env", "private_key_env"):
        name = entry.get(key)
        if name and not os.environ.get(name, "").strip():
            return [f"{key}: the environment variable {name} is not set"]
    for key in ("token_file", "private_key_file"):
        path = entry.get(key)
        if path:
            try:
                if not read_secret_file(path):
                    return [f"{key} {path} is empty"]
            except ConfigurationError as exc:
                return [f"{key}: {exc}"]
    return []


def single_org(settings: OktaSettings, event_types: str, state: str | None) -> list[OrgSpec]:
    """``--okta_org_url`` alone: the one-org list."""
    return [OrgSpec(settings, event_types, state)]



def entry_of(org: OrgSpec) -> dict:
    """The orgs-file entry that gives ``org`` again (references only, never a secret): a one-org file for a run
    of that org alone, with the same credential, rate share and selection (``okta-personal-lake audit --repair``)."""
    settings = org.settings
    entry = {"url": settings.org_url, "rate_share": settings.rate_share, "event_types": org.event_types,
             "scopes": " ".join(settings.scopes), "dpop": settings.dpop}
    for key in _CREDENTIAL_KEYS:
        if getattr(settings, key):
            entry[key] = getattr(settings, key)
    if org.state:
        entry["state"] = org.state
    return entry
