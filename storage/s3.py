"""Objects on ``s3://``, through the process's one boto3 client (:func:`storage.clients.s3_client`).

A create-if-absent is a ``PUT`` with ``If-None-Match: *`` (S3 has honoured it since 2024; moto's
server does too): the store refuses it with 412 when the key exists. A rename is a copy then a
delete (the copied object appears whole). Every client error becomes a :class:`StoreError`
naming the operation, the URI and the HTTP status.
"""

from __future__ import annotations

import os

from storage.clients import s3_client
from storage.errors import StoreError
from storage.paths import object_path

#: Files up to this size are uploaded with one PUT; larger ones in parts (boto3's managed transfer).
SINGLE_PUT_BYTES = 64 * 1024 * 1024


def _call(operation: str, uri: str, request, *allowed: int):
    """``(answer, None)`` of ``request()``, or ``(None, status)`` when the store answered a status in ``allowed``;
    any other failure is a :class:`StoreError`."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return request(), None
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in allowed:
            return None, status
        code = exc.response.get("Error", {}).get("Code", "")
        raise StoreError(f"S3 {operation} of {uri} failed: {code} (HTTP {status})", status) from None
    except (BotoCoreError, Boto3Error) as exc:  # no answer (connection, timeout), or a failed transfer
        raise StoreError(f"S3 {operation} of {uri} failed: {exc.__class__.__name__}") from None


def read(uri: str) -> bytes:
    where = object_path(uri)
    answer, _ = _call("read", uri, lambda: s3_client().get_object(Bucket=where.bucket, Key=where.key))
    return answer["Body"].read()


def read_if_exists(uri: str) -> bytes | None:
    where = object_path(uri)
    answer, _ = _call("read", uri, lambda: s3_client().get_object(Bucket=where.bucket, Key=where.key), 404)
    return None if answer is None else answer["Body"].read()


def write(uri: str, data: bytes) -> None:
    where = object_path(uri)
    _call("write", uri, lambda: s3_client().put_object(Bucket=where.bucket, Key=where.key, Body=data))


def create_if_absent(uri: str, data: bytes) -> bool:
    where = object_path(uri)
    # 409 ConditionalRequestConflict: a concurrent conditional write of the same key is under way.
    _, refused = _call("create", uri, lambda: s3_client().put_object(
        Bucket=where.bucket, Key=where.key, Body=data, IfNoneMatch="*"), 409, 412)
    return refused is None


def exists(uri: str) -> bool:
    return modified(uri) is not None


def modified(uri: str) -> float | None:
    where = object_path(uri)
    answer, _ = _call("stat", uri, lambda: s3_client().head_object(Bucket=where.bucket, Key=where.key), 404)
    return None if answer is None else answer["LastModified"].timestamp()


def listing(prefix_uri: str) -> list[tuple[str, float]]:
    """``(uri, modified)`` of every object whose key starts with the URI's key."""
    where = object_path(prefix_uri)

    def pages():
        found = []
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.key):
            found += [(where.uri(item["Key"]), item["LastModified"].timestamp()) for item in page.get("Contents", ())]
        return found

    return _call("list", prefix_uri, pages)[0]


def delete(uris: list[str]) -> None:
    by_bucket: dict[str, list[str]] = {}
    for uri in uris:
        where = object_path(uri)
        by_bucket.setdefault(where.bucket, []).append(where.key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            request = {"Bucket": bucket, "Delete": {"Objects": [{"Key": key} for key in chunk], "Quiet": True}}
            answer, _ = _call("delete", f"s3://{bucket}/{chunk[0]}",
                              lambda request=request: s3_client().delete_objects(**request))
            failed = [e for e in answer.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
            if failed:
                raise StoreError(f"S3 delete of s3://{bucket}/{failed[0]['Key']} failed: {failed[0].get('Code')}")


def delete_tree(uri: str) -> None:
    delete([path for path, _ in listing(uri.rstrip("/") + "/")])


def rename(src: str, dst: str) -> None:
    source, target = object_path(src), object_path(dst)
    copied, refused = _call("copy", src, lambda: s3_client().copy_object(
        Bucket=target.bucket, Key=target.key, CopySource={"Bucket": source.bucket, "Key": source.key}), 400)
    if refused:  # over 5 GiB, more than one request can copy: the managed, multipart copy
        _call("copy", src, lambda: s3_client().copy({"Bucket": source.bucket, "Key": source.key},
                                                     target.bucket, target.key))
    delete([src])


def upload(uri: str, source: str) -> None:
    where = object_path(uri)
    if os.path.getsize(source) <= SINGLE_PUT_BYTES:  # one request, no transfer threads
        with open(source, "rb") as body:
            _call("upload", uri, lambda: s3_client().put_object(Bucket=where.bucket, Key=where.key, Body=body))
        return
    _call("upload", uri, lambda: s3_client().upload_file(source, where.bucket, where.key))
