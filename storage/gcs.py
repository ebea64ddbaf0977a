"""Objects on ``gs://``, through the process's one google-cloud-storage client (:func:`storage.clients.gcs_client`).

A create-if-absent is an upload with ``ifGenerationMatch=0``: Cloud Storage refuses it with 412
when the object exists. A rename is a rewrite (server-side copy, in steps for large objects) then
a delete. Every client error becomes a :class:`StoreError` naming the operation, the URI and the
HTTP status.
"""

from __future__ import annotations

from storage.clients import gcs_client
from storage.errors import StoreError
from storage.paths import object_path


def _call(operation: str, uri: str, request, *allowed: int):
    """``(answer, None)`` of ``request()``, or ``(None, status)`` when the store answered a status in ``allowed``;
    any other failure is a :class:`StoreError`."""
    from google.api_core.exceptions import GoogleAPICallError, RetryError
    from google.auth.exceptions import GoogleAuthError
    from requests.exceptions import RequestException

    try:
        return request(), None
    except GoogleAPICallError as exc:
        status = exc.code if isinstance(exc.code, int) else None
        if status in allowed:
            return None, status
        raise StoreError(f"GCS {operation} of {uri} failed: {exc.__class__.__name__} (HTTP {status})",
                         status) from None
    except (RetryError, GoogleAuthError, RequestException, ConnectionError) as exc:
        raise StoreError(f"GCS {operation} of {uri} failed: {exc.__class__.__name__}") from None


def _blob(uri: str):
    where = object_path(uri)
    return gcs_client().bucket(where.bucket).blob(where.key)


def read(uri: str) -> bytes:
    return _call("read", uri, lambda: _blob(uri).download_as_bytes())[0]


def read_if_exists(uri: str) -> bytes | None:
    return _call("read", uri, lambda: _blob(uri).download_as_bytes(), 404)[0]


def write(uri: str, data: bytes) -> None:
    from google.cloud.storage.retry import DEFAULT_RETRY

    # A whole-object overwrite is idempotent: retried like the conditional ones.
    _call("write", uri, lambda: _blob(uri).upload_from_string(data, retry=DEFAULT_RETRY))


def create_if_absent(uri: str, data: bytes) -> bool:
    _, refused = _call("create", uri, lambda: _blob(uri).upload_from_string(data, if_generation_match=0), 412)
    return refused is None


def exists(uri: str) -> bool:
    return modified(uri) is not None


def modified(uri: str) -> float | None:
    where = object_path(uri)
    blob, _ = _call("stat", uri, lambda: gcs_client().bucket(where.bucket).get_blob(where.key), 404)
    return None if blob is None or blob.updated is None else blob.updated.timestamp()


def listing(prefix_uri: str) -> list[tuple[str, float]]:
    """``(uri, modified)`` of every object whose name starts with the URI's key."""
    where = object_path(prefix_uri)

    def pages():
        return [(where.uri(blob.name), blob.updated.timestamp() if blob.updated else 0.0)
                for blob in gcs_client().list_blobs(where.bucket, prefix=where.key)]

    return _call("list", prefix_uri, pages)[0]


def delete(uris: list[str]) -> None:
    for uri in uris:
        _call("delete", uri, lambda uri=uri: _blob(uri).delete(), 404)


def delete_tree(uri: str) -> None:
    delete([path for path, _ in listing(uri.rstrip("/") + "/")])


def rename(src: str, dst: str) -> None:
    def rewrite():
        source, target = _blob(src), _blob(dst)
        token, _, _ = target.rewrite(source)
        while token is not None:
            token, _, _ = target.rewrite(source, token=token)

    _call("copy", src, rewrite)
    delete([src])


def upload(uri: str, source: str) -> None:
    from google.cloud.storage.retry import DEFAULT_RETRY

    _call("upload", uri, lambda: _blob(uri).upload_from_filename(source, retry=DEFAULT_RETRY))
