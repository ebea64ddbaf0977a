"""The Okta source's settings: its flags, their checks, and the orgs of a run, resolved once.

:func:`resolve` turns the ``--source=okta`` options into :class:`OktaSourceSettings`: the orgs
(``--okta_org_url`` alone, or every org of the ``--orgs`` file, read once here), the backfill range or
the incremental start, the slice length and lookback (parsed once). Each org's
:class:`~sources.okta.connect.OktaSettings` says where its credential is, never the credential: a
worker reads it when its reader starts.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

from common.durations import parse_duration, parse_time
from common.flags import bool_flag
from okta_client.errors import ConfigurationError, UnsafeUrl
from okta_client.urls import normalise_org_url
from sources.okta.connect import PRIVATE_KEY_ENV, TOKEN_ENV, OktaSettings, read_secret_file
from sources.okta.orgs import OrgsFileError, OrgSpec, load_document, parse_orgs, single_org
from storage import fs
from transforms.selection import EventTypeSelection

MAX_SINCE_DAYS = 180  # Okta answers 400 E0000053 beyond this
#: Flags that belong to one org: with --orgs they are given per org in the file instead.
PER_ORG_FLAGS = ("okta_org_url", "okta_token_file", "okta_client_id", "okta_private_key_file", "okta_key_id")


@dataclass(frozen=True)
class OktaSourceSettings:
    """What a ``--source=okta`` run reads: which orgs, which span (a backfill) or from which cursor."""

    orgs: tuple[OrgSpec, ...]
    orgs_file: str | None  # --orgs (None: the one org of --okta_org_url)
    since: _dt.datetime | None  # a backfill reads [since, until)
    until: _dt.datetime | None
    slice_length: _dt.timedelta
    lookback: _dt.timedelta  # a first incremental run (or tail) starts this far back
    state: str | None  # the cursor file (one org) or the folder of the orgs' cursor files (--orgs)

    @property
    def org(self) -> OktaSettings:
        """The one org's settings (runs without ``--orgs``)."""
        return self.orgs[0].settings

    @property
    def backfill(self) -> bool:
        return self.since is not None


def add_flags(parser) -> None:
    okta = parser.add_argument_group("Okta System Log API (--source=okta)")
    okta.add_argument(
        "--okta_org_url",
        help="The org, e.g. https://acme.okta.com (https required; http only for a loopback test server).")
    okta.add_argument(
        "--orgs",
        help="Read many orgs in one run: a YAML or JSON file (local, gs://, s3://) listing each org's url, "
             "credential reference (token_env, token_file, or client_id with private_key_file / "
             "private_key_env; never a secret itself), and optionally rate_share, event_types and state "
             "(default: the --state folder/<host>.json). Instead of --okta_org_url and the --okta_token_file "
             "/ --okta_client_id family; see docs/sources/many-orgs.md.")
    okta.add_argument(
        "--since",
        help="Backfill start, RFC 3339 (e.g. 2026-11-01T00:00:00Z); at most 180 days back. "
             "With --until: read exactly [since, until).")
    okta.add_argument("--until", help="Backfill end, RFC 3339, exclusive; must be after --since.")
    okta.add_argument(
        "--slice", default="1h",
        help="Length of the time slices a backfill is cut into and read in parallel (e.g. 15m, 1h, 1d).")
    okta.add_argument(
        "--state",
        help="Cursor file for incremental runs (local path, gs://, s3://). Without --since, a run resumes "
             "the polling chain from it, reads until caught up, commits the lake, then stores the new "
             "cursor. Optional with --iceberg_table (one org): the run then resumes from the newest cursor "
             "the table's snapshots record, which wins over --state when both are given (the table holds "
             "the data; re-read events are skipped). With --orgs: the folder of the orgs' cursor files.")
    okta.add_argument(
        "--lookback", default="7d",
        help="How far back the first incremental run starts when neither --state nor the Iceberg table holds "
             "a cursor yet.")
    okta.add_argument(
        "--okta_rate_share", type=float, default=1.0,
        help="Largest share of the org's /api/v1/logs rate limit this pipeline may use (0-1], so other "
             "integrations keep working, e.g. 0.5.")
    okta.add_argument(
        "--okta_token_file",
        help="Where the SSWS API token is: a file (local, gs://, s3://) or a Secret Manager secret "
             "(projects/P/secrets/S[/versions/V]). Default: the OKTA_API_TOKEN environment variable. "
             "Tokens are never accepted as option values.")
    okta.add_argument(
        "--okta_client_id",
        help="OAuth 2.0 service app client id: use private_key_jwt instead of an API token.")
    okta.add_argument(
        "--okta_private_key_file",
        help="Where the service app's private key (PEM or JWK) is: a file (local, gs://, s3://) or a "
             "Secret Manager secret (projects/P/secrets/S[/versions/V]). Default: the "
             "OKTA_OAUTH_PRIVATE_KEY environment variable.")
    okta.add_argument("--okta_key_id", help="The kid of the service app's key (optional for a JWK with kid).")
    okta.add_argument("--okta_scopes", default="okta.logs.read", help="OAuth scopes, space separated.")
    bool_flag(okta, "--okta_dpop", False, "The service app requires DPoP-bound tokens (RFC 9449).")
    bool_flag(okta, "--okta_filter_pushdown", True,
              "Send the --event_types selection to Okta as a SCIM filter (the pipeline checks types "
              "again either way).")
    okta.add_argument("--okta_page_limit", type=int, default=1000, help="Events per page asked of Okta (1-1000).")


def resolve(options, problems: list[str], *, streaming: bool, iceberg: bool, local: bool,
            now: _dt.datetime | None = None) -> OktaSourceSettings | None:
    """The Okta source of a ``--source=okta`` run, or None with each problem appended to ``problems``.

    ``iceberg``: the run commits to an Iceberg table (whose snapshots record the cursor, so a one-org
    incremental run or tail may go without ``--state``); ``local``: the run's workers are this machine
    (credentials in environment variables reach them).
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    found = len(problems)
    times = _times(options, problems, now, streaming)
    if not options.since and not options.state and not streaming and not options.orgs and not iceberg:
        problems.append("--source=okta needs either --since/--until (a backfill) or --state or --iceberg_table "
                        "(an incremental run, resuming from the cursor either records)")
    if options.since and not options.until and len(problems) == found and not streaming:
        problems.append("--since needs --until for a backfill; for an open-ended tail use --state")
    if not 0 < options.okta_rate_share <= 1:
        problems.append(f"--okta_rate_share must be more than 0 and at most 1, got {options.okta_rate_share}")
    if not 1 <= options.okta_page_limit <= 1000:
        problems.append(f"--okta_page_limit must be between 1 and 1000, got {options.okta_page_limit}")
    if options.orgs:
        orgs = _many_orgs(options, problems, streaming, iceberg, local)
    else:
        orgs = _one_org(options, problems, local)
        problems += _state_file_problems(options.state)
    if len(problems) > found or times is None:
        return None
    since, until, slice_length, lookback = times
    return OktaSourceSettings(tuple(orgs), options.orgs, since, until, slice_length, lookback, options.state)


def _times(options, problems: list[str], now: _dt.datetime, streaming: bool):
    """``(since, until, slice, lookback)``, each parsed once, or None when one is wrong."""
    found = len(problems)
    durations = {}
    for name in ("slice", "lookback"):
        try:
            durations[name] = parse_duration(getattr(options, name), f"--{name}")
        except ValueError as exc:
            problems.append(str(exc))
    moments = {}
    for name in ("since", "until"):
        if getattr(options, name):
            try:
                moments[name] = parse_time(getattr(options, name), f"--{name}")
            except ValueError as exc:
                problems.append(str(exc))
    since, until = moments.get("since"), moments.get("until")
    if streaming and (options.since or options.until):
        problems.append("--since/--until are for backfills; a --streaming tail starts from --state "
                        "(or --lookback back on its first run)")
    if since and now - since > _dt.timedelta(days=MAX_SINCE_DAYS):
        problems.append(f"--since {options.since} is more than {MAX_SINCE_DAYS} days back: Okta refuses it "
                        "(E0000053), and keeps only 90 days of events")
    if since and until and until <= since:
        problems.append(f"--until {options.until} must be after --since {options.since}")
    if options.until and not options.since:
        problems.append("--until needs --since (a backfill reads [since, until))")
    lookback = durations.get("lookback")
    if not options.since and lookback is not None and lookback > _dt.timedelta(days=MAX_SINCE_DAYS):
        problems.append(f"--lookback may be at most {MAX_SINCE_DAYS} days (Okta's limit for since)")
    if len(problems) > found:
        return None
    return since, until, durations["slice"], lookback


def _one_org(options, problems: list[str], local: bool) -> list[OrgSpec]:
    if not options.okta_org_url:
        problems.append("--okta_org_url (one org) or --orgs=FILE (many) is required with --source=okta, "
                        "e.g. --okta_org_url=https://acme.okta.com")
        return []
    try:
        url = normalise_org_url(options.okta_org_url)
    except UnsafeUrl as exc:
        problems.append(f"--okta_org_url: {exc}")
        return []
    found = len(problems)
    if options.okta_private_key_file and not options.okta_client_id:
        problems.append("--okta_private_key_file needs --okta_client_id (OAuth)")
    if options.okta_client_id and options.okta_token_file:
        problems.append("give either --okta_client_id (OAuth) or --okta_token_file (API token), not both")
    problems += _credential_problems(options, local)
    try:
        selection = EventTypeSelection.parse(options.event_types)
    except ValueError:
        return []  # reported by the decode settings
    if len(problems) > found:
        return []
    settings = OktaSettings(
        org_url=url, token_file=options.okta_token_file, client_id=options.okta_client_id,
        private_key_file=options.okta_private_key_file, key_id=options.okta_key_id,
        scopes=tuple(options.okta_scopes.split()), dpop=options.okta_dpop, rate_share=options.okta_rate_share,
        page_limit=options.okta_page_limit,
        filter=selection.scim_filter() if options.okta_filter_pushdown else "")
    return single_org(settings, options.event_types, options.state)


def _many_orgs(options, problems: list[str], streaming: bool, iceberg: bool, local: bool) -> list[OrgSpec]:
    """--orgs: the file (read once), then every org in it (one line per problem, naming the org)."""
    for flag in PER_ORG_FLAGS:
        if getattr(options, flag):
            problems.append(f"--{flag} is per org with --orgs: give it in the orgs file instead")
    if options.state and "://" not in options.state and os.path.isfile(options.state):
        problems.append(f"--state {options.state} is a file; with --orgs it is the folder of the orgs' cursors "
                        "(<host>.json each)")
    try:
        document = load_document(options.orgs)
    except OrgsFileError as exc:
        problems.append(f"--orgs {options.orgs} {exc}")
        return []
    orgs, found = parse_orgs(document, default_event_types=options.event_types,
                             default_rate_share=options.okta_rate_share, state_dir=options.state,
                             page_limit=options.okta_page_limit, filter_pushdown=options.okta_filter_pushdown)
    problems += [f"--orgs {options.orgs}: {p}" for p in found]
    if (not options.since or streaming) and any(org.state is None for org in orgs):
        missing = ", ".join(org.host for org in orgs if org.state is None)
        problems.append(f"--orgs: incremental and streaming runs need a cursor per org: give --state=FOLDER "
                        f"(or state: per org) for {missing}"
                        + (" (--iceberg_table alone is not enough with --orgs: a many-org run resumes from the "
                           "orgs' state files)" if iceberg else ""))
    if not local:
        for org in orgs:
            if org.settings.token_env or org.settings.private_key_env:
                problems.append(f"--orgs: {org.settings.org_url}: token_env / private_key_env name a variable of "
                                "this machine, which the workers of a service runner never see: give "
                                "token_file or private_key_file (a file or Secret Manager name)")
    return orgs


def _state_file_problems(state: str | None) -> list[str]:
    """A local cursor file that cannot be written (cloud URIs are checked when written)."""
    if not state or "://" in state:
        return []
    if os.path.isdir(state):
        return [f"--state {state} is a folder; give the path of a cursor file in it"]
    if (where := fs.blocking_file(os.path.dirname(os.path.abspath(state)))) is not None:
        return [f"--state {state} cannot be written: {where} is a file"]
    return []


def _credential_problems(options, local: bool) -> list[str]:
    """Are the credentials where the options say, and will the workers see them? (A file is read once here
    and kept for this process: see :func:`sources.okta.connect.read_secret_file`.)"""
    if options.okta_client_id:
        if options.okta_private_key_file:
            return _readable(options.okta_private_key_file, "--okta_private_key_file")
        if not os.environ.get(PRIVATE_KEY_ENV, "").strip():
            return [f"OAuth needs the private key: --okta_private_key_file or the {PRIVATE_KEY_ENV} variable"]
        return [] if local else [_ENV_UNSEEN.format(variable=PRIVATE_KEY_ENV)]
    if options.okta_token_file:
        return _readable(options.okta_token_file, "--okta_token_file")
    if not os.environ.get(TOKEN_ENV, "").strip():
        return [f"no Okta credentials: set {TOKEN_ENV}, or give --okta_token_file, or "
                "--okta_client_id with a private key"]
    return [] if local else [_ENV_UNSEEN.format(variable=TOKEN_ENV)]


_ENV_UNSEEN = ("{variable} is set on this machine, but the workers of a service runner never see it: give "
               "--okta_token_file (a file or Secret Manager name the workers can read), or --okta_client_id with "
               "--okta_private_key_file")


def _readable(path: str, name: str) -> list[str]:
    try:
        if not read_secret_file(path):
            return [f"{name} {path} is empty"]
    except ConfigurationError as exc:
        return [f"{name}: {exc}"]
    return []
