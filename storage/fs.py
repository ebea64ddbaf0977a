"""Small, explicit file operations over Beam's FileSystems (local, ``gs://``, ``s3://``).

This is the one place outside the Beam modules that uses Beam: its filesystems
reach every store the pipeline supports with the options a run already has
(``--s3_endpoint_url``, ...; :func:`configure` hands them over). Callers see
plain functions and never import Beam themselves.

Beam's filesystems hide the differences that matter here, and a few traps
(measured in docs/beam-2.77.md): a local rename into a missing
folder fails quietly inside fileio, so every write here creates its folder
first and every rename is checked.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid as _uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

PARQUET_COMPRESSION = "zstd"


def configure(options) -> None:
    """Let this process's file operations use a run's storage options (``--s3_*``): Beam's
    ``PipelineOptions``, or the command-line flags a tool passed through as a list."""
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(options if isinstance(options, PipelineOptions) else PipelineOptions(list(options)))


def s3_settings() -> dict[str, str]:
    """The S3 settings Beam's ``s3://`` filesystem uses in this process (``--s3_endpoint_url``, keys, region).

    Beam keeps them where the run (``pipeline.cli.fs_options_set``) or its worker harness put
    them; other S3 clients of the run (the Iceberg FileIO) take them from here, so one set of
    options reaches one store. Empty when none were given (clients then use AWS's defaults).
    """
    from apache_beam.options.pipeline_options import S3Options

    options = FileSystems._pipeline_options  # noqa: SLF001 - Beam's only record of the filesystem options
    if options is None:
        return {}
    s3 = options.view_as(S3Options)
    values = {"endpoint": s3.s3_endpoint_url, "access_key_id": s3.s3_access_key_id,
              "secret_access_key": s3.s3_secret_access_key, "session_token": s3.s3_session_token,
              "region": s3.s3_region_name}
    return {k: v for k, v in values.items() if v}


def gcs_emulator_host() -> str | None:
    """``STORAGE_EMULATOR_HOST`` (``http://127.0.0.1:P``) when ``gs://`` goes to a local stand-in: Beam's
    ``gs://`` filesystem (google-cloud-storage) follows it, so the other GCS clients of a run do too."""
    return os.environ.get("STORAGE_EMULATOR_HOST") or None


def is_local(uri: str) -> bool:
    return FileSystems.get_scheme(uri) in (None, "file")


def local_path(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base.rstrip("/"), *parts)


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
    return FileSystems.exists(uri)


def list_files(pattern: str) -> list[str]:
    """Paths matching a glob; an empty list when nothing (or no folder) matches."""
    try:
        result = FileSystems.match([pattern])[0]
    except Exception:  # BeamIOError when the folder does not exist
        return []
    return sorted(m.path for m in result.metadata_list)


def listing(pattern: str) -> list[tuple[str, float]]:
    """``(path, last modified epoch seconds or 0)`` of every file matching a glob (empty when none)."""
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - BeamIOError when the folder does not exist
        return []
    return sorted((m.path, float(m.last_updated_in_seconds or 0.0)) for m in found)


def create(uri: str, mime_type: str = "application/octet-stream"):
    """A new file open for writing (binary); on object stores it appears when closed."""
    return FileSystems.create(uri, mime_type=mime_type, compression_type=CompressionTypes.UNCOMPRESSED)


def delete(uris: Iterable[str]) -> None:
    uris = [u for u in uris]
    if uris:
        FileSystems.delete(uris)


def delete_tree(uri: str) -> None:
    """Remove a folder (local) or every object under a prefix (object stores).

    On local disk the parent folder goes too when that leaves it empty.
    """
    if is_local(uri):
        path = local_path(uri).rstrip("/")
        shutil.rmtree(path, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass  # not empty (another run is staging) or already gone
        return
    files = list_files(join(uri, "**"))
    if files:
        FileSystems.delete(files)


def rename(src: str, dst: str) -> None:
    """Move one file; the destination folder is created first."""
    ensure_dir(os.path.dirname(local_path(dst)) if is_local(dst) else dst)
    FileSystems.rename([src], [dst])
    if not exists(dst):  # never trust a rename to report its own failure
        raise OSError(f"rename of {src} to {dst} did not produce the file")


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole small object atomically (temp file + rename on local disk)."""
    if is_local(uri):
        path = local_path(uri)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # Hidden and not ending in the real extension: no reader or glob takes it for the file.
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{_uuid.uuid4().hex}")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return
    with FileSystems.create(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        handle.write(data)


def read_bytes(uri: str) -> bytes:
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return handle.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def read_parquet(uri: str, columns: list[str] | None = None) -> pa.Table:
    if is_local(uri):
        return pq.read_table(local_path(uri), columns=columns)
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return pq.read_table(io.BytesIO(handle.read()), columns=columns)


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
                with open(self._tmp, "rb") as src, FileSystems.create(
                    self.uri, compression_type=CompressionTypes.UNCOMPRESSED
                ) as dst:
                    shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
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
