"""A decode process's messages arrive whole, however its stdout takes them."""

from __future__ import annotations

import io

import pyarrow as pa

from sources.files.worker import ipc_bytes, read_message, write_message


class ShortWritingStream(io.RawIOBase):
    """A raw stream that takes at most ``most`` bytes per write, as a raw pipe does when a signal cuts a write
    (the worker's stdout under ``PYTHONUNBUFFERED=1``, stopped and continued)."""

    def __init__(self, most: int):
        self.most, self.taken = most, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        part = bytes(data[:self.most])
        self.taken += part
        return len(part)


def test_messages_written_to_a_stream_that_takes_part_of_each_write_are_read_back_whole():
    table = pa.table({"uuid": [f"u-{i}" for i in range(2_000)]})
    out = ShortWritingStream(most=1_000)
    write_message(out, ("batch", (3, 0, 0, 0), [], [(("2026-11-01", "personal.a"), 0, 2_000, 3)]), ipc_bytes(table))
    write_message(out, ("ready",))
    write_message(out, ("end",))
    stream = io.BytesIO(bytes(out.taken))
    (meta, data) = read_message(stream)
    assert meta[0] == "batch" and meta[3] == [(("2026-11-01", "personal.a"), 0, 2_000, 3)]
    assert pa.ipc.open_stream(pa.py_buffer(data)).read_all().equals(table)
    assert read_message(stream) == (("ready",), b"")
    assert read_message(stream) == (("end",), b"")
    assert read_message(stream) is None
