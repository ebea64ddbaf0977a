"""A decode process for local file replays: byte ranges in, Arrow row batches and dead letters out (Beam-free).

Started by :class:`sources.files_parallel.DecodeRangesInProcesses` as
``python -m sources.range_worker`` (a fresh interpreter: the parent runs Beam's
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
  batches ``("batch", counts, dead_letters, parts)`` with their rows, grouped by
  partition, as an Arrow IPC stream in ``data`` (none when they kept nothing); ``("ready",)`` again
  when a range is done; ``("error", "Class: message")`` then exit 1 on any
  error; ``("end", peak_rss_kb)`` after ``None``.

A worker that dies without ``end`` (killed, out of memory) is seen by the parent
as an end of file: the run fails and nothing is committed.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import struct
import sys

import pyarrow as pa
import pyarrow.compute as pc

from sources.line_ranges import line_batches
from transforms.decode import decode_batch
from transforms.flatten import Flattener
from transforms.gc_pause import PausedCollector
from transforms.selection import EventTypeSelection

HEADER = struct.Struct("<QQ")
#: Test hook: a worker kills itself (SIGKILL) after this many batches, to prove a crash fails the run cleanly.
KILL_AFTER_ENV = "OKTA_PERSONAL_TEST_KILL_WORKER_AFTER_BATCHES"
#: Batches sent as one message: the parent stages one table slice per partition and message, so fewer,
#: larger messages cost it less (a random-order batch of 1000 events touches ~55 partitions).
MERGE_BATCHES = 8


def write_message(out, meta, data=b"") -> None:
    encoded = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(encoded), len(data)))
    out.write(encoded)
    if len(data):
        out.write(data)
    out.flush()


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
    offset, rows, events)`` of ``table`` (see :class:`transforms.records.RowBatches`).
    """

    def __init__(self, settings: dict):
        self.selection = EventTypeSelection.parse(settings["event_types"])
        self.flattener = Flattener(settings["raw_event"], settings["max_payload_bytes"])
        self.prepare = Flattener().prepare
        self.max_payload, self.org = settings["max_payload_bytes"], settings["org"]

    def decode(self, batch):
        events, dead, read, filtered = decode_batch(batch, self.max_payload, self.selection, self.prepare,
                                                    org=self.org)
        if not events:
            return (read, filtered, 0, 0), dead, [], None
        result = self.flattener.flatten(events)
        parts, offset = [], 0
        for key, table in result.tables.items():
            parts.append((tuple(key), offset, table.num_rows, result.events[key]))
            offset += table.num_rows
        return (read, filtered, result.duplicates, result.coerced), dead + result.dead_letters, parts, result.table


def merge(decoded: list):
    """Several decoded batches as one: counts added, rows regrouped by partition (batch order kept in each)."""
    if len(decoded) == 1:
        return decoded[0]
    read = filtered = duplicates = coerced = 0
    dead: list = []
    pieces: dict = {}  # partition -> [(table slice, events)], in batch order
    for (r, f, d, c), batch_dead, parts, table in decoded:
        read, filtered, duplicates, coerced = read + r, filtered + f, duplicates + d, coerced + c
        dead += batch_dead
        for key, offset, rows, events in parts:
            pieces.setdefault(key, []).append((table.slice(offset, rows), events))
    if not pieces:
        return (read, filtered, duplicates, coerced), dead, [], None
    parts, tables, offset = [], [], 0
    for key, found in pieces.items():
        if len(found) > 1:
            found, dropped = _first_copies(found)
            duplicates += dropped
        rows = sum(t.num_rows for t, _ in found)
        parts.append((key, offset, rows, sum(e for _, e in found)))
        tables += [t for t, _ in found]
        offset += rows
    return (read, filtered, duplicates, coerced), dead, parts, pa.concat_tables(tables).combine_chunks()


def _first_copies(found: list) -> tuple[list, int]:
    """One partition's ``(table, events)`` pieces without a uuid an earlier piece holds (as the flattener
    keeps the first copy inside a batch); also the number of events dropped."""
    seen = set(found[0][0].column("uuid").to_pylist())
    kept, dropped = [found[0]], 0
    for table, events in found[1:]:
        uuids = table.column("uuid").to_pylist()
        again = seen.intersection(uuids)
        if again:
            table = table.filter(pc.invert(pc.is_in(table.column("uuid"), value_set=pa.array(list(again)))))
            events -= len(again)
            dropped += len(again)
        seen.update(uuids)
        if table.num_rows:
            kept.append((table, events))
    return kept, dropped


def send_merged(stdout, decoded: list) -> None:
    counts, dead, parts, table = merge(decoded)
    write_message(stdout, ("batch", counts, dead, parts), b"" if table is None else ipc_bytes(table))


def serve(stdin, stdout) -> None:
    settings, _ = read_message(stdin)
    decoder = BatchDecoder(settings)
    kill_after = int(os.environ.get(KILL_AFTER_ENV, "0") or 0)
    batches = 0
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
            for batch in line_batches(handle, path, start, end, settings["batch_size"], settings["batch_bytes"]):
                collector.between_batches()
                pending.append(decoder.decode(batch))
                if len(pending) >= MERGE_BATCHES:
                    send_merged(stdout, pending)
                    pending = []
                batches += 1
                if kill_after and batches >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
        if pending:
            send_merged(stdout, pending)
        write_message(stdout, ("ready",))
    write_message(stdout, ("end", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


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
