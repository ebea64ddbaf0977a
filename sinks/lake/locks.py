"""Partition commit leases: one commit at a time per lake partition, across processes, machines and stores.

A commit reads a partition's uuids, then publishes the files of the events not among them
(:mod:`sinks.lake.commit`). Two commits of one partition at once would both miss each other's
events and publish them twice, so each commit holds the partition's lease from before it reads
until after it publishes. A lease is a numbered object, created only if absent (the one
conditional write every store has: :func:`storage.fs.create_if_absent`):

    LAKE/_locks/event_date=.../event_type=.../000000000007.lease

- **Who holds it.** The holder of the highest number owns the partition, while its lease is
  neither released nor stale. To take it, a commit creates number top+1; of several that try,
  the store lets exactly one create it; the others wait and look again.
- **Nothing is ever deleted to be safe.** Releasing overwrites one's own lease with
  ``released``; the highest lease is never deleted (the new holder deletes only the lower
  ones), so numbers only grow and an old holder that wakes up always sees that it was overtaken.
  No conditional delete is needed (fake-gcs-server lacks one, and so did S3 until lately).
- **Renewal.** A daemon thread rewrites the lease every ``stale_after / 6`` s while the commit
  runs; the lease says its own ``stale_after``, which every waiter honours.
- **Stale.** A lease is taken over when it is stale by *both* clocks: its ``renewed_at`` (the
  holder's clock) is older than its ``stale_after`` by the waiter's clock, and its modification
  time (the store's clock) is older than that by the store's clock now (:func:`storage.fs.store_now`).
  So a killed holder blocks the partition for at most ``stale_after`` (120 s by default), and a
  wrong clock on one machine cannot make a live lease look stale. On local disk a lease whose
  holder ran on this very machine and process namespace (the lease records the boot id, the pid
  namespace, the pid and the process's start time) is free at once when that process is gone: a
  dead process publishes nothing more, and a local rename is done or not. (On object stores a
  request the dead process had sent may still land, so there the stale time is always waited.)
- **Checked before each publish.** Before it publishes a file the holder checks that its lease is
  still the highest and that its last renewal is less than ``stale_after / 2`` old by its own
  clocks; else it stops with :class:`LeaseLost` (retryable) and publishes nothing more. Two
  commits of one partition can therefore overlap only if a holder stalls for more than
  ``stale_after / 2`` between that check and the end of one publish (one rename): a process
  frozen that long, with its renewals stopped too.

A commit that fails releases its lease (its published files are whole; the next commit reads
them). The tests shorten ``stale_after`` through :class:`LeaseTiming` (or the module default).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid as _uuid
from dataclasses import dataclass

from common.errors import LakeError
from storage import fs

LOCKS_DIR = "_locks"
LEASE_SUFFIX = ".lease"
#: How long a lease may go unrenewed before another commit takes it over (the holder renews 6 times within).
STALE_AFTER_SECONDS = 120.0
#: How long a commit waits for live holders of its partition before it fails (retryable).
WAIT_AT_MOST_SECONDS = 3600.0

log = logging.getLogger(__name__)


class LeaseLost(LakeError):
    """Another commit took the partition over (this one stalled past the stale time): nothing more is published."""

    retryable = True


class LeaseWaitTimeout(LakeError):
    """Other commits held the partition for longer than the commit may wait."""

    retryable = True


@dataclass(frozen=True)
class LeaseTiming:
    stale_after: float = STALE_AFTER_SECONDS
    wait_at_most: float = WAIT_AT_MOST_SECONDS

    @property
    def renew_every(self) -> float:
        return self.stale_after / 6

    @property
    def poll(self) -> float:
        """How often a waiter looks again (jittered by the caller)."""
        return min(1.0, self.stale_after / 20)


def default_timing() -> LeaseTiming:
    """The module's defaults, read now (a test process may have shortened them)."""
    return LeaseTiming(STALE_AFTER_SECONDS, WAIT_AT_MOST_SECONDS)


def lock_folder(lake: str, partition: str) -> str:
    return fs.join(lake, LOCKS_DIR, partition)


def lease_number(path: str) -> int | None:
    name = os.path.basename(path)
    stem = name[:-len(LEASE_SUFFIX)] if name.endswith(LEASE_SUFFIX) else ""
    return int(stem) if stem.isdigit() else None


def leases(folder: str) -> list[tuple[int, str, float]]:
    """``(number, path, modified by the store's clock)`` of a partition's leases, lowest first."""
    found = []
    for path, modified in fs.listing(fs.join(folder, "*" + LEASE_SUFFIX)):
        number = lease_number(path)
        if number is not None:
            found.append((number, path, modified))
    return sorted(found)


def read_lease(path: str) -> dict | None:
    try:
        record = json.loads(fs.read_bytes(path))
    except Exception:  # noqa: BLE001 - gone, or not a lease this code wrote
        return None
    return record if isinstance(record, dict) else None


def process_identity(pid: int | None = None) -> dict | None:
    """What tells a process apart on Linux, across pid reuse and containers: boot id, pid namespace, pid and
    start time (``/proc``); None where there is no ``/proc`` or no such process."""
    pid = os.getpid() if pid is None else pid
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
        with open(f"/proc/{pid}/stat") as handle:
            started = handle.read().rsplit(")", 1)[1].split()[19]  # field 22, after the command's parentheses
    except (OSError, IndexError):
        return None
    return {"boot_id": boot, "pid_namespace": namespace, "pid": pid, "started": started}


def holder_is_gone(record: dict) -> bool:
    """Whether the lease's holder ran in this machine's process namespace and that process no longer exists."""
    theirs, mine = record.get("process"), process_identity()
    if not isinstance(theirs, dict) or mine is None or not isinstance(theirs.get("pid"), int):
        return False
    if (theirs.get("boot_id"), theirs.get("pid_namespace")) != (mine["boot_id"], mine["pid_namespace"]):
        return False
    now = process_identity(theirs["pid"])
    return now is None or now["started"] != theirs.get("started")


def is_free(folder: str, record: dict | None, modified: float, default_stale_after: float) -> bool:
    """Whether the top lease may be taken over: released, stale by the holder's and the store's clocks, or (on
    local disk) held by a process of this machine that is gone."""
    if record is not None and record.get("released") is True:
        return True
    if record is not None and fs.is_local(folder) and holder_is_gone(record):
        return True
    stale_after = default_stale_after
    renewed = None
    if record is not None:
        declared = record.get("stale_after")
        stale_after = float(declared) if isinstance(declared, (int, float)) and declared > 0 else stale_after
        renewed = record.get("renewed_at") if isinstance(record.get("renewed_at"), (int, float)) else None
    if renewed is not None and time.time() - renewed <= stale_after:
        return False
    return fs.store_now(folder) - modified > stale_after


class PartitionLease:
    """``with PartitionLease(lake, partition, owner) as lease:`` hold the partition's commit lease for the block;
    call :meth:`check` right before each publish."""

    def __init__(self, lake: str, partition: str, owner: str, timing: LeaseTiming | None = None):
        self.folder = lock_folder(lake, partition)
        self.owner = owner
        self.timing = timing or default_timing()
        self.token = _uuid.uuid4().hex
        self.number: int | None = None
        self.path: str | None = None
        self._lost: str | None = None
        self._renewed = (0.0, 0.0)  # (monotonic, wall) when the last renewal was confirmed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, released: bool = False) -> bytes:
        now = time.time()
        return json.dumps({"owner": self.owner, "token": self.token, "host": socket.gethostname(),
                           "pid": os.getpid(), "process": process_identity(), "renewed_at": now,
                           "renewed_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                           "stale_after": self.timing.stale_after, "released": released}).encode()

    def acquire(self) -> PartitionLease:
        deadline = time.monotonic() + self.timing.wait_at_most
        while True:
            found = leases(self.folder)
            number = 1
            if found:
                top, top_path, modified = found[-1]
                free = is_free(self.folder, read_lease(top_path), modified, self.timing.stale_after)
                number = top + 1 if free else None
            if number is not None:
                path = fs.join(self.folder, f"{number:012d}{LEASE_SUFFIX}")
                started = (time.monotonic(), time.time())
                if fs.create_if_absent(path, self._record()):
                    self.number, self.path, self._renewed = number, path, started
                    self._thread = threading.Thread(target=self._renew, name=f"lease {path}", daemon=True)
                    self._thread.start()
                    self._forget_lower(found)
                    return self
                continue  # another commit created it first: look again at once
            if time.monotonic() > deadline:
                raise LeaseWaitTimeout(f"waited {self.timing.wait_at_most:g} s for the commit lease of "
                                       f"{self.folder}: other commits kept it (retry the run)")
            time.sleep(self.timing.poll * random.uniform(0.5, 1.5))

    def _forget_lower(self, found: list) -> None:
        """Delete the leases below ours: released or overtaken, never looked at again."""
        lower = [path for number, path, _ in found if number < self.number]
        try:
            fs.delete(lower)
        except Exception as exc:  # noqa: BLE001 - tidying only
            log.warning("could not delete old commit leases in %s: %s", self.folder, exc)

    def _overtaken(self) -> bool:
        return any(number > self.number for number, _, _ in leases(self.folder))

    def _since_renewal(self) -> float:
        mono, wall = self._renewed
        return max(time.monotonic() - mono, time.time() - wall)

    def _renew(self) -> None:
        while not self._stop.wait(self.timing.renew_every):
            if self._since_renewal() > self.timing.stale_after / 2:
                self._lost = "its renewals stopped for longer than half the stale time"
                return
            try:
                if self._overtaken():
                    self._lost = "another commit took the partition over"
                    return
                started = (time.monotonic(), time.time())
                fs.write_bytes(self.path, self._record())
                self._renewed = started
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: try again next beat
                log.warning("could not renew the commit lease %s: %s", self.path, exc)

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless this commit still owns the partition, with time to publish."""
        if self._lost is None and self._since_renewal() > self.timing.stale_after / 2:
            self._lost = "its last renewal is older than half the stale time"
        if self._lost is None and self._overtaken():
            self._lost = "another commit took the partition over"
        if self._lost is not None:
            raise LeaseLost(f"the commit lease {self.path} was lost ({self._lost}); nothing more was published "
                            "(rerun as is)")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.path is None:
            return
        try:  # even when lost: a lower lease marked released changes nothing, and the top one is free at once
            fs.write_bytes(self.path, self._record(released=True))
        except Exception as exc:  # noqa: BLE001 - the others then wait for the stale time
            log.warning("could not release the commit lease %s: %s", self.path, exc)

    def __enter__(self) -> PartitionLease:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
