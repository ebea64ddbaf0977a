"""Run byte ranges of local JSON Lines files through N decode processes (:mod:`sources.range_worker`).

:func:`decoded_batches` starts the processes, hands each a range whenever it
asks for one (so a slow range never holds up the others), and yields what they
send back, batch by batch: ``(counts, dead_letters, parts, table)``. A reader
thread per process puts messages on one bounded queue, so a process that runs
ahead blocks on its pipe and memory stays bounded whatever the input size.

Any failure (a process that reports an error, dies or is killed, or the
consumer stopping early) stops every process before the error reaches the
caller; a dead process is a :class:`DecodeProcessFailed`, one line.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pyarrow as pa

from sources.range_worker import read_message, write_message

_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder holding the project's packages
_QUEUE_PER_PROCESS = 2  # messages buffered per process (8 batches each) before it waits
#: Benchmark hook: append each decode process's peak RSS (kB, one line each) to this file when it ends.
PEAKS_ENV = "OKTA_PERSONAL_BENCH_DECODE_PEAKS"


class DecodeProcessFailed(RuntimeError):
    """A local decode process failed or died; the run stops before any commit."""


def default_processes() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _Process:
    def __init__(self, number: int, settings: dict, env: dict):
        self.number = number
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen([sys.executable, "-m", "sources.range_worker"], stdin=subprocess.PIPE,
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


def _record_peak(peak_kb) -> None:
    target = os.environ.get(PEAKS_ENV)
    if target:
        with open(target, "a") as out:
            out.write(f"{int(peak_kb)}\n")


def decoded_batches(ranges: list, settings: dict, processes: int):
    """Yield ``(counts, dead_letters, parts, table or None)`` for every batch of ``ranges``, in no set order.

    ``counts`` is ``(read, filtered, duplicates, coerced)``, ``parts`` lists ``((event_date, event_type),
    offset, rows, events)`` of ``table`` (see :class:`transforms.records.RowBatches`).
    """
    tasks = list(ranges)
    if not tasks:
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
    count = max(1, min(processes, len(tasks)))
    lock = threading.Lock()
    inbox: queue.Queue = queue.Queue(maxsize=_QUEUE_PER_PROCESS * count)
    stopping = threading.Event()
    pool: list[_Process] = []

    def next_task():
        with lock:
            return tasks.pop(0) if tasks else None

    def put(item) -> bool:
        while not stopping.is_set():
            try:
                inbox.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def pump(proc: _Process) -> None:
        try:
            while True:
                message = read_message(proc.popen.stdout)
                if message is None:
                    if not stopping.is_set():
                        put(("died", proc.death()))
                    return
                meta, data = message
                kind = meta[0]
                if kind == "ready":
                    proc.current = next_task()
                    write_message(proc.popen.stdin, proc.current)
                elif kind == "batch":
                    if not put((meta, data)):
                        return
                elif kind == "end":
                    put(("end", meta[1]))
                    return
                else:  # "error"
                    put(("died", f"{proc.name()} failed{proc.where()}: {meta[1]}"))
                    return
        except (OSError, EOFError, ValueError):
            if not stopping.is_set():
                try:
                    put(("died", proc.death()))
                except (OSError, ValueError):  # stopped meanwhile: the caller is already failing or done
                    put(("died", f"{proc.name()} stopped{proc.where()}"))
        except Exception as exc:  # noqa: BLE001 - e.g. a message that does not unpickle: never leave the caller waiting
            put(("died", f"{proc.name()} sent what could not be read{proc.where()} ({type(exc).__name__}: {exc})"))

    threads = []
    try:
        for number in range(count):
            pool.append(_Process(number, settings, env))
        for proc in pool:
            thread = threading.Thread(target=pump, args=(proc,), name=f"decode-process-{proc.number + 1}",
                                      daemon=True)
            thread.start()
            threads.append(thread)
        running = count
        while running:
            item = inbox.get()
            if item[0] == "end":
                running -= 1
                _record_peak(item[1])
                continue
            if item[0] == "died":
                raise DecodeProcessFailed(f"{item[1]}; nothing was committed")
            (_, counts, dead, parts), data = item
            table = pa.ipc.open_stream(pa.py_buffer(data)).read_all() if data else None
            yield counts, dead, parts, table
    finally:
        stopping.set()
        for proc in pool:
            proc.kill()
        for thread in threads:
            thread.join(timeout=10)
        for proc in pool:
            proc.close()
