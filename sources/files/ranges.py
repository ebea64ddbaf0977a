"""How a replayed file is cut into byte ranges (Beam-free).

:class:`sources.files.beam.SplitFilesFn` lists the files with Beam's filesystems and
asks :func:`file_ranges` for each file's ranges, at the split size it was given
(``split_bytes`` of ``ReadExportedFiles`` and ``ExportedFilesToRows``; ``SPLIT_BYTES`` by default).
"""

from __future__ import annotations

from typing import NamedTuple

from transforms import jsonio

#: Uncompressed JSON Lines files are cut into byte ranges of this size (read in parallel).
SPLIT_BYTES = 64 * 1024 * 1024
#: Files larger than this are never tried as one pretty-printed JSON document.
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
#: Lines are handed on in batches of at most this many bytes (or ``--batch_size`` lines).
BATCH_BYTES = 8 * 1024 * 1024
_FIRST_LINE_LIMIT = 64 * 1024 * 1024


class FileRange(NamedTuple):
    """A byte range of one file; ``end`` None means to the end of the file."""

    path: str
    start: int
    end: int | None
    document: bool  # maybe one pretty-printed JSON document: read whole


def first_line_is_json(handle) -> tuple[bool, bytes]:
    """Whether the first line of an open (binary) file is JSON on its own, and that line, stripped."""
    try:
        line = handle.readline(_FIRST_LINE_LIMIT)
    except TypeError:  # Beam's CompressedFile.readline takes no limit
        line = handle.readline()
    stripped = line.strip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:]
    if not stripped:
        return True, stripped
    try:
        jsonio.loads(stripped)
        return True, stripped
    except jsonio.NotJson:
        return False, stripped


def file_ranges(path: str, size: int, split_bytes: int, compressed: bool, open_file):
    """Yield the ``FileRange`` elements of one file; ``open_file()`` opens it (decompressed) for reading."""
    if size == 0:
        return
    with open_file() as handle:
        ok, first = first_line_is_json(handle)
    if not ok and first[:1] in (b"[", b"{") and size <= MAX_DOCUMENT_BYTES:
        yield FileRange(path, 0, None, True)
    elif compressed or size <= split_bytes:
        yield FileRange(path, 0, None, False)
    else:
        for start in range(0, size, split_bytes):
            yield FileRange(path, start, min(start + split_bytes, size), False)
