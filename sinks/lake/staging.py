"""Where a run's unfinished files live, how they are named, and how a dead run's are removed.

Readers find the lake's data with globs (``event_date=*/event_type=*/*.parquet``,
``**/*.parquet``) or by walking folders (pyarrow, Spark). Nothing a run has not
committed may look like data to either:

- **Place.** A run writes only under ``LAKE/_staging/<run>/`` until it commits;
  folders starting with ``_`` are skipped by pyarrow, Spark and Hive.
- **Name.** A staged file ends in ``.staged`` (``<id>.parquet.staged``,
  ``<id>.jsonl.staged``), so no ``*.parquet`` or ``*.jsonl`` glob, however
  deep, matches it, whether it is half written, complete, or left by a killed
  run.

**Leases.** A run that stages holds a lease on its folder: the file
``_staging/<run>/lease.json``, written every ``HEARTBEAT_SECONDS`` (from the
first beat that finds something staged) by a daemon thread in each process
that stages or commits for the run, until the run removes its folder (the
thread stops when the lease is gone) or the process dies. After its own
commit, a run removes every *other* staging folder that is stale: nothing in it (lease, staged files) was written for
``STALE_AFTER_SECONDS``, by the storage's clock, *and* the lease's own
``renewed_at`` is that old too, by the writer's clock. A live run renews its
lease 60 times within that limit, so its folder is never taken (a
streaming run sweeps every ``SWEEP_EVERY_SECONDS``); a folder
whose age cannot be told is kept. Only a run stalled for longer than the limit
(a suspended machine) could lose its staging: its commit then fails with
"staged file ... is missing" and changes nothing in the lake, since a commit
is a rename of whole files, insert-if-absent on uuid.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid as _uuid

from storage import fs

STAGING_DIR = "_staging"
STAGED_SUFFIX = ".staged"
LEASE_NAME = "lease.json"
HEARTBEAT_SECONDS = 60.0
STALE_AFTER_SECONDS = 3600.0
SWEEP_EVERY_SECONDS = 600.0  # a streaming run looks for dead runs' staging this often


def staging_dir(lake: str, run_id: str) -> str:
    return fs.join(lake, STAGING_DIR, run_id)


def staged_file(staging: str, extension: str) -> str:
    """A new staged file's path: ``<staging>/<id>.<extension>.staged`` (no reader's glob matches it)."""
    return fs.join(staging, f"{_uuid.uuid4().hex}.{extension}{STAGED_SUFFIX}")


def file_id(staged_path: str) -> str:
    """The id part of a staged file's name, which its committed name keeps."""
    return os.path.basename(staged_path).split(".", 1)[0]


# --- leases -------------------------------------------------------------------------------------

def write_lease(staging: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    lease = {"renewed_at": now, "host": socket.gethostname(), "pid": os.getpid(),
             "renewed_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    fs.write_bytes(fs.join(staging, LEASE_NAME), json.dumps(lease).encode())


def read_lease(staging: str) -> dict | None:
    try:
        return json.loads(fs.read_bytes(fs.join(staging, LEASE_NAME)))
    except Exception:  # noqa: BLE001 - missing, half-written by a killed run, foreign
        return None


class _Keeper:
    """Renews one staging folder's lease until released, or until the run removes the folder.

    The first lease is written at the first beat that finds something staged:
    a run (or worker) that stages nothing, or a commit shorter than a beat,
    writes no lease at all (its staged files are younger than any age limit).
    """

    def __init__(self, staging: str, heartbeat: float):
        self.staging, self.heartbeat, self.holders = staging, heartbeat, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease {staging}", daemon=True)

    def _run(self) -> None:
        written = False
        while not self.stop.wait(self.heartbeat):
            try:
                if fs.exists(fs.join(self.staging, LEASE_NAME)) or (
                        not written and fs.list_files(fs.join(self.staging, "*"))):
                    if not self.stop.is_set():
                        write_lease(self.staging)
                        written = True
                elif written:
                    break  # the run removed its staging folder: nothing left to keep
            except Exception:  # noqa: BLE001 - a storage hiccup: try again next beat
                continue
        with _LOCK:
            if _KEEPERS.get(self.staging) is self:
                del _KEEPERS[self.staging]


_LOCK = threading.Lock()
_KEEPERS: dict[str, _Keeper] = {}


def hold(staging: str, heartbeat: float | None = None) -> None:
    """Take (or join) this process's lease on ``staging``: renew it in the background from now on."""
    with _LOCK:
        keeper = _KEEPERS.get(staging)
        if keeper is None or keeper.stop.is_set():
            keeper = _KEEPERS[staging] = _Keeper(staging, heartbeat or HEARTBEAT_SECONDS)
            keeper.thread.start()
        keeper.holders += 1


def release(staging: str) -> None:
    """Stop renewing once every holder in this process has released (the lease file stays)."""
    with _LOCK:
        keeper = _KEEPERS.get(staging)
        if keeper is None:
            return
        keeper.holders -= 1
        if keeper.holders > 0:
            return
        keeper.stop.set()
        del _KEEPERS[staging]
    keeper.thread.join(timeout=30)  # no renewal may land after the caller removes the folder


def forget(staging: str) -> None:
    """Stop this process's renewals of ``staging`` now, whoever holds it (the run is about to remove it)."""
    with _LOCK:
        keeper = _KEEPERS.pop(staging, None)
    if keeper is not None:
        keeper.stop.set()
        keeper.thread.join(timeout=30)


def discard(lake: str, run_id: str) -> None:
    """Remove a run's staging folder now (the run is over: committed, or failed and to be rerun from its input)."""
    ours = staging_dir(lake, run_id)
    forget(ours)
    fs.delete_tree(ours)


class leased:
    """``with leased(staging):`` hold the lease for the block, then remove the staging folder."""

    def __init__(self, staging: str):
        self.staging = staging

    def __enter__(self):
        hold(self.staging)
        return self.staging

    def __exit__(self, *exc):
        release(self.staging)
        fs.delete_tree(self.staging)
        return False


# --- removing dead runs' staging ----------------------------------------------------------------

def staging_folders(lake: str) -> dict[str, float]:
    """``{run folder: newest write time of anything in it}`` under ``LAKE/_staging`` (0 if unknown)."""
    root = fs.join(lake, STAGING_DIR)
    folders: dict[str, float] = {}
    if fs.is_local(root):
        path = fs.local_path(root)
        if not os.path.isdir(path):
            return {}
        for entry in os.scandir(path):
            if not entry.is_dir(follow_symlinks=False):
                continue
            newest = entry.stat().st_mtime
            for folder, _dirs, files in os.walk(entry.path):
                for name in files:
                    try:
                        newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
                    except FileNotFoundError:
                        pass  # committed (renamed away) while we looked
            folders[fs.join(root, entry.name)] = newest
        return folders
    prefix = root.rstrip("/") + "/"
    for path, modified in fs.listing(fs.join(root, "**")):
        rest = path[len(prefix):] if path.startswith(prefix) else ""
        if "/" not in rest:
            continue
        folder = fs.join(root, rest.split("/", 1)[0])
        folders[folder] = max(folders.get(folder, 0.0), modified)
    return folders


def is_stale(staging: str, newest_write: float, now: float, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    """Whether nothing has been written in ``staging`` for ``stale_after`` s, by both clocks we can ask."""
    if staging.rstrip("/") in _KEEPERS:  # held by this very process
        return False
    if not newest_write or now - newest_write <= stale_after:
        return False
    lease = read_lease(staging)
    renewed = (lease or {}).get("renewed_at")
    return not (isinstance(renewed, (int, float)) and now - renewed <= stale_after)


def remove_stale(lake: str, keep: str | None = None, stale_after: float = STALE_AFTER_SECONDS,
                 now: float | None = None) -> list[str]:
    """Remove the staging folders of runs that are dead (see the module doc); return them."""
    now = time.time() if now is None else now
    removed = []
    for folder, newest in sorted(staging_folders(lake).items()):
        if keep and folder.rstrip("/") == keep.rstrip("/"):
            continue
        if is_stale(folder, newest, now, stale_after):
            fs.delete_tree(folder)
            removed.append(folder)
    return removed


_LAST_SWEEP: dict[str, float] = {}


def remove_stale_now_and_then(lake: str, every: float = SWEEP_EVERY_SECONDS) -> list[str]:
    """:func:`remove_stale`, at most once per ``every`` seconds per lake in this process (streaming)."""
    now = time.monotonic()
    last = _LAST_SWEEP.get(lake)
    if last is not None and now - last < every:
        return []
    _LAST_SWEEP[lake] = now
    try:
        return remove_stale(lake)
    except Exception:  # noqa: BLE001 - tidying up must never fail a commit
        return []
