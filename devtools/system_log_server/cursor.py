"""The opaque ``after`` cursor of next links: base64url JSON plus an HMAC, so a forged one is refused.

A cursor is ``<base64url(JSON)>.<base64url(HMAC-SHA256, 16 bytes)>`` where the
JSON is ``{"m": mode, "t": microseconds, "s": sequence}``: the position just
past the last event served. ``mode`` is ``asc`` or ``desc`` (bounded requests,
position in published order) or ``poll`` (polling requests, position in
persistence order). The key is per server, so cursors do not outlive it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import NamedTuple

import orjson


class CursorError(ValueError):
    """The cursor is malformed, forged, or from another server."""


class Cursor(NamedTuple):
    mode: str
    key: tuple[int, int]


class CursorCodec:
    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)

    def encode(self, cursor: Cursor) -> str:
        body = orjson.dumps({"m": cursor.mode, "t": cursor.key[0], "s": cursor.key[1]})
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def decode(self, text: str) -> Cursor:
        try:
            body_part, mac_part = text.split(".")
            body, mac = _unb64(body_part), _unb64(mac_part)
        except (ValueError, binascii.Error) as error:
            raise CursorError("malformed cursor") from error
        if not hmac.compare_digest(mac, self._mac(body)):
            raise CursorError("cursor was not issued by this server")
        fields = orjson.loads(body)
        return Cursor(fields["m"], (fields["t"], fields["s"]))

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("empty or non-ASCII")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
