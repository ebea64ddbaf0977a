"""The polling cursor of incremental runs, kept outside Beam (local file, ``gs://``, ``s3://``).

Okta says the checkpoint of a tail is the last ``next`` link of a polling
chain, not ``max(published)``: resending ``published`` as ``since`` skips
late-persisted events and duplicates others. The state file holds that link,
plus the org and filter it belongs to (a cursor is meaningless elsewhere),
and is replaced whole (write to a temporary name, then rename; an object
store publishes a new object atomically).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field

from okta_client.errors import ConfigurationError
from storage import fs
from transforms import jsonio

STATE_VERSION = 1


@dataclass
class CursorState:
    org_url: str
    filter: str
    next_url: str
    updated_at: str = ""
    run_id: str = ""
    version: int = STATE_VERSION
    # When the chain behind next_url last read a short page, as asked (the end of the span the coverage report
    # proves).
    caught_up_at: str = ""
    # Where the chain that led to next_url started (sources.okta.polling.StartPoint.describe()): recorded in
    # the lake's run records (sinks/lake/records.py) for the coverage report, never written to the state file.
    started: dict = field(default_factory=dict, compare=False)

    def check_matches(self, org_url: str, filter: str, uri: str) -> None:
        if self.org_url != org_url:
            raise ConfigurationError(
                f"the state at {uri} holds a cursor for {self.org_url}, not {org_url}: use another --state")
        if self.filter != filter:
            raise ConfigurationError(
                f"the state at {uri} was written with filter {self.filter!r}, not {filter!r}: "
                "use another --state (a cursor only resumes the query it came from)")


def load(uri: str) -> CursorState | None:
    """The stored cursor, or None when there is none yet (first run)."""
    if not fs.exists(uri):
        return None
    try:
        data = jsonio.loads(fs.read_bytes(uri))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('version')!r}")
        return CursorState(**{k: data[k] for k in ("org_url", "filter", "next_url", "updated_at",
                                                     "run_id", "version")},
                           caught_up_at=data.get("caught_up_at", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"the state at {uri} is not a cursor this pipeline wrote ({exc})") from None


def store(uri: str, state: CursorState) -> None:
    state.updated_at = _dt.datetime.now(_dt.timezone.utc).isoformat()
    try:
        stored = asdict(state)
        stored.pop("started")
        fs.write_bytes(uri, jsonio.dumps(stored))
    except Exception as exc:  # noqa: BLE001 - named, so the run's one error line says what to fix
        raise OSError(f"cannot store the cursor in --state {uri}: {exc.__class__.__name__}: {exc}") from exc
