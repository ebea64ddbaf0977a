"""Small, explicit file operations on local disk, ``gs://`` and ``s3://``: the one storage face of the pipeline.

Callers see plain functions (:func:`read_bytes`, :func:`list_files`, :func:`rename`, ...) that take
URIs; each goes to :mod:`storage.local`, :mod:`storage.gcs` or :mod:`storage.s3`, and the object
stores to the process's one client of each (:mod:`storage.clients`, configured once per process by
:func:`configure` from the run's ``--s3_*`` options). Globs keep the meaning Beam's filesystems gave
them (:mod:`storage.paths`). A file appears whole or not at all: local writes go through a hidden
temporary name and a rename, object stores publish an object when its upload completes.

:func:`create_if_absent` is the one conditional write: ``O_EXCL``-like on local disk (a hard link),
``ifGenerationMatch=0`` on Cloud Storage, ``If-None-Match: *`` on S3. It is what the lake's
partition commit leases are made of (:mod:`sinks.lake.locks`).
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid as _uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from storage import gcs, local, s3
from storage.clients import configure, gcs_emulator_host, s3_settings
from storage.paths import glob_regex, is_local, join, literal_prefix, local_path, scheme

__all__ = ["PARQUET_COMPRESSION", "ParquetFileWriter", "blocking_file", "configure", "create", "create_if_absent",
           "delete", "delete_tree", "ensure_dir", "exists", "gcs_emulator_host", "is_local", "join", "list_files",
           "listing", "local_path", "modified", "parquet_file", "read_bytes", "read_parquet", "read_text", "rename",
           "s3_settings", "store_now", "write_bytes", "write_parquet"]

PARQUET_COMPRESSION = "zstd"


def _store(uri: str):
    found = scheme(uri)
    if found in (None, "file"):
        return local
    if found == "gs":
        return gcs
    if found == "s3":
        return s3
    raise ValueError(f"{uri!r}: unsupported scheme {found}:// (local paths, gs:// and s3:// are)")


def blocking_file(path: str) -> str | None:
    """The first existing ancestor of a local path that is not a folder (so the path cannot be made), if any."""
    current = os.path.abspath(path)
    while True:
        parent = os.path.dirname(current)
        if os.path.exists(current):
            return None if os.path.isdir(current) else current
        if parent == current:
            return None
        current = parent


def ensure_dir(uri: str) -> None:
    if is_local(uri):
        os.makedirs(local_path(uri), exist_ok=True)


def exists(uri: str) -> bool:
    return _store(uri).exists(uri)


def modified(uri: str) -> float | None:
    """When the store last wrote the file (epoch seconds, by the store's clock), None when it does not exist."""
    return _store(uri).modified(uri)


def store_now(folder: str) -> float:
    """The store's clock now, as it stamps files (object stores: a probe object ``.clock`` written in ``folder``)."""
    store = _store(folder)
    if store is local:
        return local.now(folder)
    probe = folder.rstrip("/") + "/.clock"
    store.write(probe, b"")
    return store.modified(probe) or 0.0


def list_files(pattern: str) -> list[str]:
    """Paths matching a glob; an empty list when nothing (or no folder) matches."""
    return [path for path, _ in listing(pattern)]


def listing(pattern: str) -> list[tuple[str, float]]:
    """``(path, last modified epoch seconds)`` of every file matching a glob (empty when none)."""
    store = _store(pattern)
    if store is local:
        return local.match(pattern)
    regex = glob_regex(pattern)  # an object store lists by key prefix; the glob is applied here
    return sorted(item for item in store.listing(literal_prefix(pattern)) if regex.match(item[0]))


def create(uri: str, mime_type: str = "application/octet-stream"):
    """A new file open for writing (binary); on object stores it appears when closed."""
    if is_local(uri):
        path = local_path(uri)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")
    return _UploadOnClose(uri)


class _UploadOnClose(io.BufferedWriter):
    """A local temporary file, uploaded whole to its object when closed (removed either way)."""

    def __init__(self, uri: str):
        fd, self._tmp = tempfile.mkstemp(prefix="okta-lake-upload-")
        super().__init__(io.FileIO(fd, "wb"))
        self._uri = uri

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
            _store(self._uri).upload(self._uri, self._tmp)
        finally:
            os.unlink(self._tmp)

    def __del__(self):
        if not self.closed:  # dropped unclosed (a failed bundle): nothing is uploaded
            super().close()
            os.unlink(self._tmp)


def delete(uris: Iterable[str]) -> None:
    by_store: dict = {}
    for uri in uris:
        by_store.setdefault(_store(uri), []).append(uri)
    for store, found in by_store.items():
        store.delete(found)


def delete_tree(uri: str) -> None:
    """Remove a folder (local) or every object under a prefix (object stores).

    On local disk the parent folder goes too when that leaves it empty.
    """
    _store(uri).delete_tree(uri)


def rename(src: str, dst: str) -> None:
    """Move one file (the destination appears whole); the destination folder is created first."""
    _store(dst).rename(src, dst)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole small object atomically (temp file + rename on local disk)."""
    _store(uri).write(uri, data)


def create_if_absent(uri: str, data: bytes) -> bool:
    """Write a whole small object only if nothing is at ``uri``: True when this call created it, False when
    something was there already. Atomic against any number of concurrent callers: exactly one of them wins."""
    return _store(uri).create_if_absent(uri, data)


def read_bytes(uri: str) -> bytes:
    return _store(uri).read(uri)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def parquet_file(uri: str) -> pq.ParquetFile | None:
    """A Parquet file opened for reading (an object store's is read whole, once), None when it does not exist."""
    if is_local(uri):
        try:
            return pq.ParquetFile(local_path(uri))
        except FileNotFoundError:
            return None
    data = _store(uri).read_if_exists(uri)
    return None if data is None else pq.ParquetFile(pa.BufferReader(data))


def read_parquet(uri: str, columns: list[str] | None = None) -> pa.Table:
    if is_local(uri):
        return pq.read_table(local_path(uri), columns=columns)
    return pq.read_table(pa.BufferReader(read_bytes(uri)), columns=columns)


class ParquetFileWriter:
    """A Parquet file written row group by row group, to any filesystem.

    Local files are written in place; remote files are written to a local
    temporary file and uploaded whole on :meth:`close` (an object store
    publishes an object only when its upload completes, so readers never see
    half a file).
    """

    def __init__(self, uri: str, schema: pa.Schema, compression: str = PARQUET_COMPRESSION):
        self.uri = uri
        self.rows = 0
        if is_local(uri):
            path = local_path(uri)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._tmp = None
            target = path
        else:
            fd, self._tmp = tempfile.mkstemp(suffix=".parquet")
            os.close(fd)
            target = self._tmp
        self._writer = pq.ParquetWriter(
            target,
            schema,
            compression=compression,
            use_dictionary=True,
            write_statistics=True,
            coerce_timestamps="us",
            allow_truncated_timestamps=False,
            use_deprecated_int96_timestamps=False,
        )

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        if self._tmp is not None:
            try:
                _store(self.uri).upload(self.uri, self._tmp)
            finally:
                os.unlink(self._tmp)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.unlink(self._tmp)
            elif self._tmp is None and os.path.exists(local_path(self.uri)):
                os.unlink(local_path(self.uri))


def write_parquet(uri: str, table: pa.Table, compression: str = PARQUET_COMPRESSION) -> None:
    """Write one table as one complete file, atomically on local disk."""
    if is_local(uri):
        path = local_path(uri)
        tmp = os.path.join(os.path.dirname(path), f".tmp-{_uuid.uuid4().hex}")
        writer = ParquetFileWriter(tmp, table.schema, compression)
        writer.write(table)
        writer.close()
        os.replace(tmp, path)
        return
    writer = ParquetFileWriter(uri, table.schema, compression)
    writer.write(table)
    writer.close()
