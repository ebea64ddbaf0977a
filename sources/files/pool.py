"""Run byte ranges of local JSON Lines files through N decode processes (:mod:`sources.files.worker`).

:func:`decoded_batches` starts the processes, hands each a range whenever it
asks for one (so a slow range never holds up the others), and yields what they
send back, batch by batch: ``(counts, dead_letters, parts, table, drift)``. A reader
thread per process puts messages on one bounded inbox, so a process that runs
ahead blocks on its pipe and memory stays bounded whatever the input size.

Any failure (a process that reports an error, dies or is killed, or the
consumer stopping early) stops every process before the error reaches the
caller; a dead process is a :class:`DecodeProcessFailed`, one line.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from common.errors import LakeError
from sources.files.worker import read_message, write_message
from transforms.settings import DecodeSettings

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding the project's packages
_QUEUE_PER_PROCESS = 2  # messages buffered per process (8 batches each) before it waits


class DecodeProcessFailed(LakeError, RuntimeError):
    """A local decode process failed or died; the run stops before any commit.

    Retryable when the OS killed the process (out of memory, a signal): a rerun may well finish; fatal when
    the process failed or exited by itself (it would again).
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.retryable = self.retryable_from_message(message)

    @classmethod
    def retryable_from_message(cls, message: str) -> bool:
        return re.match(r"decode process \d+ \(pid \d+\) was killed by signal \d+", message) is not None


def default_processes() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worth_processes(ranges: list, processes: int) -> bool:
    """Whether ``ranges`` go to decode processes at all (one range, a file under the split size, or one
    process: starting processes would cost more than they save)."""
    return len(ranges) >= 2 and processes >= 2


class _Process:
    def __init__(self, number: int, settings: DecodeSettings, env: dict):
        self.number = number
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen([sys.executable, "-m", "sources.files.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self.stderr, env=env, bufsize=1 << 20)
        self.current = None  # the range it works on
        write_message(self.popen.stdin, settings)

    def name(self) -> str:
        return f"decode process {self.number + 1} (pid {self.popen.pid})"

    def where(self) -> str:
        if self.current is None:
            return ""
        path, start, end, _ = self.current
        return f" while reading {path} bytes {start}-{'' if end is None else end}"

    def death(self) -> str:
        code = self.popen.wait()
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        self.stderr.seek(0)
        last = [line for line in self.stderr.read().decode(errors="replace").splitlines() if line.strip()]
        return f"{self.name()} {how}{self.where()}" + (f" ({last[-1].strip()[:200]})" if last else "")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()

    def close(self) -> None:
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.stderr.close()


class _Inbox:
    """The reader threads' messages, up to ``items`` of them: a reader that runs ahead waits for room."""

    def __init__(self, items: int):
        self._items = items
        self._queue: collections.deque = collections.deque()
        self._changed = threading.Condition()

    def put(self, item, stopping: threading.Event) -> bool:
        """Add ``item`` once there is room; False if the pool stopped meanwhile."""
        with self._changed:
            while len(self._queue) >= self._items:
                if stopping.is_set():
                    return False
                self._changed.wait(0.2)
            if stopping.is_set():
                return False
            self._queue.append(item)
            self._changed.notify_all()
            return True

    def get(self):
        with self._changed:
            while not self._queue:
                self._changed.wait()
            item = self._queue.popleft()
            self._changed.notify_all()
            return item


class _Pool:
    """Started processes working through ``ranges``; :meth:`batches` consumes what they send (once)."""

    def __init__(self, ranges: list, settings: DecodeSettings, processes: int):
        self._tasks = list(ranges)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
        self.count = max(1, min(processes, len(self._tasks)))
        self._lock = threading.Lock()
        self._inbox = _Inbox(_QUEUE_PER_PROCESS * self.count)
        self._stopping = threading.Event()
        self._stopped = False
        self._pool: list[_Process] = []
        self._threads: list[threading.Thread] = []
        try:
            for number in range(self.count):
                self._pool.append(_Process(number, settings, env))
            for proc in self._pool:
                thread = threading.Thread(target=self._pump, args=(proc,), name=f"decode-process-{proc.number + 1}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)
        except BaseException:
            self.stop()
            raise

    def _next_task(self):
        with self._lock:
            return self._tasks.pop(0) if self._tasks else None

    def _put(self, item) -> bool:
        return self._inbox.put(item, self._stopping)

    def _pump(self, proc: _Process) -> None:
        try:
            while True:
                message = read_message(proc.popen.stdout)
                if message is None:
                    if not self._stopping.is_set():
                        self._put(("died", proc.death()))
                    return
                meta, data = message
                kind = meta[0]
                if kind == "ready":
                    proc.current = self._next_task()
                    write_message(proc.popen.stdin, proc.current)
                elif kind == "batch":
                    if not self._put((meta, data)):
                        return
                elif kind == "end":
                    self._put(("end",))
                    return
                else:  # "error"
                    self._put(("died", f"{proc.name()} failed{proc.where()}: {meta[1]}"))
                    return
        except (OSError, EOFError, ValueError):
            if not self._stopping.is_set():
                try:
                    self._put(("died", proc.death()))
                except (OSError, ValueError):  # stopped meanwhile: the caller is already failing or done
                    self._put(("died", f"{proc.name()} stopped{proc.where()}"))
        except Exception as exc:  # noqa: BLE001 - e.g. a message that does not unpickle: never leave the caller waiting
            self._put(("died", f"{proc.name()} sent what could not be read{proc.where()} "
                               f"({type(exc).__name__}: {exc})"))

    def batches(self):
        """Yield every batch; stop the processes at the end, on an error or when the caller stops early."""
        import pyarrow as pa

        try:
            running = self.count
            while running:
                item = self._inbox.get()
                if item[0] == "end":
                    running -= 1
                    continue
                if item[0] == "died":
                    raise DecodeProcessFailed(f"{item[1]}; nothing was committed")
                (_, counts, dead, parts, drift), data = item
                table = pa.ipc.open_stream(pa.py_buffer(data)).read_all() if data else None
                yield counts, dead, parts, table, drift
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the processes (if still running), wait for the reader threads, close the pipes (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        for proc in self._pool:
            proc.kill()
        for thread in self._threads:
            thread.join(timeout=10)
        for proc in self._pool:
            proc.close()


def decoded_batches(ranges: list, settings: DecodeSettings, processes: int):
    """Yield ``(counts, dead_letters, parts, table or None, drift)`` for every batch of ``ranges``, in no set order.

    ``counts`` is ``(read, filtered, duplicates, coerced)``, ``parts`` lists ``((event_date, event_type),
    offset, rows, events)`` of ``table`` (see :class:`transforms.records.RowBatches`), ``drift`` is the schema
    drift of the batch's kept events (a :mod:`common.drift` report).
    """
    if not ranges:
        return
    yield from _Pool(ranges, settings, processes).batches()
