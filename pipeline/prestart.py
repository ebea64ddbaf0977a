"""Start the decode processes of a local file replay before Beam is imported (``python -m pipeline``).

Importing Beam and building the graph take the first second of a run, on one
core; the decode processes (:mod:`sources.files.pool`) then need their own
interpreter start before the first batch. :func:`start` looks at the command
line first, Beam-free: when it is sure the run is a local batch replay whose
files will go to the decode processes, it cuts the files into the very ranges
:class:`sources.files.beam.SplitFilesFn` will (:mod:`sources.files.ranges`), builds the
settings :class:`sources.files.beam.ExportedFilesToRows` will
(:func:`sources.files.pool.decode_settings`) and starts the pool, which the run
adopts only if both match exactly (else it is killed and a fresh one started).

It reads only the first option group (:mod:`pipeline.lake_flags`, the
declarations :class:`pipeline.options.LakeOptions` uses); any other flag
(``--runner``, ``--streaming``, ``--help``, ...), a value it cannot parse, a glob,
a remote or compressed input, or any error: it does nothing, and the run goes
as it would have. It never prints anything and never changes what the run does,
only when the decoding starts.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.lake_flags import add_lake_group, split_patterns
from sources.files import pool as range_pool
from sources.files.ranges import BATCH_BYTES, SPLIT_BYTES, file_ranges

#: Set to 1 to never start the decode processes early (to compare, or to rule it out).
DISABLE_ENV = "OKTA_PERSONAL_NO_PRESTART"
#: Inputs with these suffixes only: Beam reads every one of them uncompressed (checked in tests/unit).
PLAIN_SUFFIXES = (".jsonl", ".ndjson", ".json", ".txt", ".log")
_GLOB = set("*?[")


class _Unsure(Exception):
    pass


class _SilentParser(argparse.ArgumentParser):
    def error(self, message):  # never print: the run's own parser reports problems
        raise _Unsure(message)


def _local_files(patterns: list[str]) -> list[str]:
    """The files of plain local paths (no glob: Beam's glob rules are not repeated here), as Beam names them."""
    found = []
    for pattern in patterns:
        if "://" in pattern or _GLOB & set(pattern) or pattern.endswith(("/", "\\")):
            raise _Unsure(pattern)
        if not os.path.isfile(pattern) or not pattern.lower().endswith(PLAIN_SUFFIXES):
            raise _Unsure(pattern)
        found.append(pattern)
    return found


def planned(argv: list[str]) -> tuple[list, dict, int] | None:
    """``(ranges, settings, processes)`` the run's decode processes will get, or None when not sure."""
    parser = _SilentParser(add_help=False, allow_abbrev=False)
    add_lake_group(parser)
    try:
        options, unknown = parser.parse_known_args(argv)
        if unknown or options.source != "file" or not options.input:
            return None
        if not 0 <= options.decode_processes <= 256:
            return None
        processes = options.decode_processes or range_pool.default_processes()
        ranges = []
        for path in _local_files(split_patterns(options.input)):
            ranges += file_ranges(path, os.path.getsize(path), SPLIT_BYTES, False,
                                  lambda path=path: open(path, "rb"))  # noqa: SIM115 - closed by file_ranges
    except (_Unsure, OSError, ValueError):
        return None
    plain = sorted(r for r in ranges if not r.document)
    if not range_pool.worth_processes(plain, processes):
        return None
    settings = range_pool.decode_settings(options.event_types, options.raw_event,
                                          options.max_dead_letter_payload_bytes, options.okta_org,
                                          options.batch_size, BATCH_BYTES)
    return plain, settings, processes


def start(argv: list[str]) -> None:
    """Start the decode processes now if the run is sure to want them (see the module doc); never raises."""
    if os.environ.get(DISABLE_ENV):
        return
    try:
        plan = planned(argv)
        if plan is not None:
            range_pool.prestart(*plan)
    except Exception:  # noqa: BLE001, S110 - an early start is an optimisation: the run starts its own pool
        pass


def main() -> None:
    """The ``okta-personal-lake`` script and ``python -m pipeline``: start decoding early, run, exit with
    the run's code (:func:`pipeline.main.exit_without_teardown`)."""
    start(sys.argv[1:])
    from pipeline.main import exit_without_teardown
    from pipeline.main import main as run

    exit_without_teardown(run())
