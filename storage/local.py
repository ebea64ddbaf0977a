"""Files on local disk: the same operations as the object stores (:mod:`storage.gcs`, :mod:`storage.s3`).

Whole files are written beside their place under a hidden name that no reader's glob takes for
data (``.NAME.tmp-<id>``), then renamed into place, so a file appears whole or not at all. A
create-if-absent is a hard link of such a file to the name (``link`` fails when the name exists,
atomically, on every POSIX filesystem), so the file it creates is whole too.
"""

from __future__ import annotations

import os
import shutil
import uuid as _uuid

from storage.paths import depth_limited, glob_regex, literal_prefix, local_path


def _tmp_beside(path: str) -> str:
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{_uuid.uuid4().hex}")


def _write_tmp(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp_beside(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def read(uri: str) -> bytes:
    with open(local_path(uri), "rb") as handle:
        return handle.read()


def read_if_exists(uri: str) -> bytes | None:
    try:
        return read(uri)
    except FileNotFoundError:
        return None


def write(uri: str, data: bytes) -> None:
    path = local_path(uri)
    os.replace(_write_tmp(path, data), path)


def create_if_absent(uri: str, data: bytes) -> bool:
    path = local_path(uri)
    tmp = _write_tmp(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def exists(uri: str) -> bool:
    return os.path.exists(local_path(uri))


def modified(uri: str) -> float | None:
    try:
        return os.stat(local_path(uri)).st_mtime
    except FileNotFoundError:
        return None


def now(_folder: str) -> float:
    """The store's clock: this machine's."""
    import time

    return time.time()


def match(pattern: str) -> list[tuple[str, float]]:
    """``(path, mtime)`` of every file a glob matches."""
    pattern = local_path(pattern)
    prefix = literal_prefix(pattern)
    if prefix == pattern:  # no wildcard: the file itself
        when = modified(pattern)
        return [(pattern, when)] if when is not None and os.path.isfile(pattern) else []
    top = os.path.dirname(prefix)
    regex, depth = glob_regex(pattern), depth_limited(pattern)
    found = []
    for folder, dirs, files in os.walk(top or "."):
        if depth is not None and folder[len(top or "."):].count(os.sep) >= depth:
            dirs[:] = []
        for name in files:
            path = os.path.join(folder, name) if top else os.path.relpath(os.path.join(folder, name))
            if regex.match(path):
                try:
                    found.append((path, os.stat(path).st_mtime))
                except FileNotFoundError:
                    pass  # renamed away while we looked
    return sorted(found)


def delete(uris: list[str]) -> None:
    for uri in uris:
        try:
            os.unlink(local_path(uri))
        except FileNotFoundError:
            pass


def delete_tree(uri: str) -> None:
    """Remove a folder, and its parent when that leaves the parent empty."""
    path = local_path(uri).rstrip("/")
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # not empty (another run is staging) or already gone


def rename(src: str, dst: str) -> None:
    dst = local_path(dst)
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    os.replace(local_path(src), dst)


def upload(uri: str, source: str) -> None:
    """Copy a local file into place, whole."""
    path = local_path(uri)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _tmp_beside(path)
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)
