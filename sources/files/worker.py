"""A decode process for local file replays: byte ranges in, Arrow row batches and dead letters out (Beam-free).

Started by :mod:`sources.files.pool` as
``python -m sources.files.worker`` (a fresh interpreter: the parent runs Beam's
threads, so it is never forked, and this module imports neither Beam nor the
pipeline). It runs exactly what the Beam graph runs on one batch
(:func:`transforms.decode.decode_batch` with the flattener's ``prepare``, then
:meth:`transforms.flatten.Flattener.flatten`), so the rows, the dead letters and
every count are the same; only where the work happens changes.

Protocol, on stdin / stdout, every message framed as ``<meta length, data length>``
(two little-endian uint64), a pickled ``meta``, then ``data`` bytes:

- parent -> worker: first the settings ``dict``; then one ``FileRange`` per
  task, sent when the worker asked for work; ``None`` to stop.
- worker -> parent: ``("ready",)`` (asks for a range); per ``MERGE_BATCHES``
  batches ``("batch", counts, dead_letters, parts, drift)`` with their rows, grouped by
  partition, as an Arrow IPC stream in ``data`` (none when they kept nothing), and with a range's last
  message the schema drift its kept events showed (a :mod:`common.drift` report, ``{}`` for none; a message of
  no batches when that is all there is left to send); ``("ready",)`` again
  when a range is done; ``("error", "Class: message")`` then exit 1 on any
  error; ``("end",)`` after ``None``.

A worker that dies without ``end`` (killed, out of memory) is seen by the parent
as an end of file: the run fails and nothing is committed.
"""

from __future__ import annotations

import pickle
import struct
import sys

import numpy as np
import pyarrow as pa

from sources.files.lines import line_batches
from transforms.decode import decode_batch
from transforms.drift import new_watch
from transforms.flatten import Flattener
from transforms.gc_pause import PausedCollector
from transforms.settings import DecodeSettings
from transforms.shortcuts import LineDecoder

HEADER = struct.Struct("<QQ")
#: Batches sent as one message: the parent stages one table slice per partition and message, so fewer,
#: larger messages cost it less (a random-order batch of 1000 events touches ~55 partitions).
MERGE_BATCHES = 8


def write_message(out, meta, data=b"") -> None:
    encoded = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    for part in (HEADER.pack(len(encoded), len(data)), encoded, data):
        _write_all(out, part)
    out.flush()


def _write_all(out, data) -> None:
    """Write every byte of ``data``. A raw stream takes what one ``write(2)`` took: under
    ``PYTHONUNBUFFERED`` a worker's stdout is one, and a pipe write cut by a signal (the process
    stopped and continued: Ctrl-Z then ``fg``) returns short; the rest must still follow."""
    view = memoryview(data).cast("B")
    while view:
        view = view[out.write(view):]


def read_message(stream):
    """``(meta, data)`` from ``stream``, or None at a clean end of file (raises EOFError on a cut message)."""
    header = stream.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise EOFError("cut message header")
    meta_len, data_len = HEADER.unpack(header)
    encoded = stream.read(meta_len)
    data = stream.read(data_len) if data_len else b""
    if len(encoded) < meta_len or len(data) < data_len:
        raise EOFError("cut message")
    return pickle.loads(encoded), data


def ipc_bytes(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


class BatchDecoder:
    """One ``RawBatch`` -> ``(counts, dead_letters, parts, table or None)``, as the Beam graph's two steps do it.

    ``counts`` is ``(read, filtered, duplicates, coerced)``; ``parts`` lists ``((event_date, event_type),
    offset, rows, events)`` of ``table`` (see :class:`transforms.records.RowBatches`). The schema drift of the
    kept events adds up until :meth:`take_drift`.
    """

    def __init__(self, settings: DecodeSettings):
        self.selection = settings.selection
        self.flattener = Flattener(settings.raw_event, settings.max_payload_bytes)
        self.prepare = self.flattener.prepare  # the extraction: the same whatever raw_event and the payload bound
        self.typed = LineDecoder()
        self.max_payload, self.org = settings.max_payload_bytes, settings.org
        self.drift = new_watch(settings.drift, settings.drift_cpu_share)

    def take_drift(self) -> dict:
        """The drift report of the batches decoded since the last call (``{}`` without ``--drift``)."""
        return self.drift.take() if self.drift is not None else {}

    def decode(self, batch):
        events, dead, read, filtered = decode_batch(batch, self.max_payload, self.selection, self.prepare,
                                                    org=self.org, typed=self.typed)
        if not events:
            return (read, filtered, 0, 0), dead, [], None
        result = self.flattener.flatten(events)
        if self.drift is not None:
            self.drift.observe(events, result.type_changes)
        parts = [(tuple(key), offset, rows, result.events[key]) for key, offset, rows in result.tables.spans()]
        return (read, filtered, result.duplicates, result.coerced), dead + result.dead_letters, parts, result.table


def merge(decoded: list):
    """Several decoded batches as one: counts added, rows regrouped by partition (batch order kept in each).

    The rows are gathered with one ``take`` over the batches' tables: a slice per partition and batch,
    concatenated, cost 4x more (~11,000 slices per 200,000 lines of a random-order export).
    """
    if len(decoded) == 1:
        return decoded[0]
    read = filtered = duplicates = coerced = 0
    dead: list = []
    pieces: dict = {}  # partition -> [(first row in the batches' rows, rows, events)], in batch order
    tables, base = [], 0
    for (r, f, d, c), batch_dead, parts, table in decoded:
        read, filtered, duplicates, coerced = read + r, filtered + f, duplicates + d, coerced + c
        dead += batch_dead
        if table is None:
            continue
        for key, offset, rows, events in parts:
            pieces.setdefault(key, []).append((base + offset, rows, events))
        tables.append(table)
        base += table.num_rows
    if not pieces:
        return (read, filtered, duplicates, coerced), dead, [], None
    combined = pa.concat_tables(tables)
    uuids = None
    parts, starts, lengths, offset = [], [], [], 0
    for key, found in pieces.items():
        if len(found) > 1:
            if uuids is None:
                uuids = combined.column("uuid").to_pylist()
            found, dropped = _first_copies(found, uuids)
            duplicates += dropped
        rows = events = 0
        for start, length, piece_events in found:
            starts.append(start)
            lengths.append(length)
            rows += length
            events += piece_events
        parts.append((key, offset, rows, events))
        offset += rows
    lengths_np = np.array(lengths, dtype=np.int64)
    run_starts = np.cumsum(lengths_np) - lengths_np  # where each run lands in the result
    indices = np.repeat(np.array(starts, dtype=np.int64) - run_starts, lengths_np) + np.arange(offset, dtype=np.int64)
    return (read, filtered, duplicates, coerced), dead, parts, combined.take(pa.array(indices)).combine_chunks()


def _first_copies(found: list, uuids: list) -> tuple[list, int]:
    """One partition's ``(first row, rows, events)`` pieces without a uuid an earlier piece holds (as the
    flattener keeps the first copy inside a batch; ``uuids`` is the uuid of every row), cut into runs of
    rows; also the number of events dropped."""
    first, length, _ = found[0]
    seen = set(uuids[first:first + length])
    kept, dropped = [found[0]], 0
    for first, length, events in found[1:]:
        piece = uuids[first:first + length]
        again = seen.intersection(piece)
        if again:
            events -= len(again)
            dropped += len(again)
            kept += [(first + i, 1, 0) for i, uuid in enumerate(piece) if uuid not in again]
            kept.append((first, 0, events))  # the piece's events that are left, on a run of no rows
        else:
            kept.append((first, length, events))
        seen.update(piece)
    return kept, dropped


def send_merged(stdout, decoded: list, drift: dict) -> None:
    counts, dead, parts, table = merge(decoded) if decoded else ((0, 0, 0, 0), [], [], None)
    write_message(stdout, ("batch", counts, dead, parts, drift), b"" if table is None else ipc_bytes(table))


def serve(stdin, stdout) -> None:
    settings, _ = read_message(stdin)
    decoder = BatchDecoder(settings)
    collector = PausedCollector()  # as in the Beam graph: no cyclic collection inside the hot loop
    collector.start()
    write_message(stdout, ("ready",))
    while True:
        message = read_message(stdin)
        if message is None or message[0] is None:
            break
        path, start, end, _document = message[0]
        pending: list = []
        with open(path, "rb") as handle:
            for batch in line_batches(handle, path, start, end, settings.batch_size, settings.batch_bytes):
                collector.between_batches()
                pending.append(decoder.decode(batch))
                if len(pending) >= MERGE_BATCHES:
                    send_merged(stdout, pending, {})
                    pending = []
        # A range's drift goes with its last message: a report per message cost more than the watch itself.
        drift = decoder.take_drift()
        if pending or drift:
            send_merged(stdout, pending, drift)
        write_message(stdout, ("ready",))
    write_message(stdout, ("end",))


def main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages on the pipe
    try:
        serve(stdin, stdout)
    except BrokenPipeError:
        return 1  # the parent is gone
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        first = (str(exc).strip().splitlines() or [""])[0]
        try:
            write_message(stdout, ("error", f"{type(exc).__name__}: {first}"[:500]))
        except OSError:
            pass
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
