"""A run's dead letters: staged as JSON Lines (per org), then moved into the dead-letter folder (no Beam here).

Staged like the rows (:mod:`sinks.lake.stage`), under ``LAKE/_staging/<run_id>/``; once the run's
rows are committed, each file moves to ``DEAD_LETTER/<run_id>/`` (``--dead_letter``, by default
``LAKE/_dead_letter``), unless its org's source failed: then it is withheld, counted by stage and
left in the staging folder, as that org's rows are (:func:`sinks.lake.commit.commit_partition`).
"""

from __future__ import annotations

from sinks.lake.stage import StagedFile
from sinks.lake.staging import file_id, staged_file
from storage import fs
from transforms import jsonio

DEFAULT_DEAD_LETTER_DIR = "_dead_letter"


class DeadLetterStager:
    """Appends dead-letter records as JSON Lines to staging files (of one org, when ``org`` is given)."""

    def __init__(self, staging: str, max_file_bytes: int = 64 * 1024 * 1024, org: str | None = None):
        self.staging = staging
        self.org = org
        self.max_file_bytes = max_file_bytes
        self._handle = None
        self._path = None
        self._bytes = 0
        self._records = 0
        self.finished: list[StagedFile] = []

    def add(self, record: dict) -> None:
        line = jsonio.dumps(record) + b"\n"
        if self._handle is None:
            self._path = staged_file(self.staging, "jsonl")
            fs.ensure_dir(self.staging)
            self._handle = fs.create(self._path, mime_type="application/x-ndjson")
        self._handle.write(line)
        self._bytes += len(line)
        self._records += 1
        if self._bytes >= self.max_file_bytes:
            self._close()

    def _close(self) -> None:
        self._handle.close()
        self.finished.append(StagedFile(None, self._path, self._records, self._records, self.org))
        self._handle, self._path, self._bytes, self._records = None, None, 0, 0

    def close(self) -> list[StagedFile]:
        if self._handle is not None:
            self._close()
        finished, self.finished = self.finished, []
        return finished


def commit_dead_letters(dead_letter_uri: str, staged: StagedFile, run_id: str) -> str:
    """Move one staged dead-letter file to ``DEAD_LETTER/<run_id>/``; idempotent."""
    name = f"dead-letters-{file_id(staged.path)}.jsonl"
    final = fs.join(dead_letter_uri, run_id, name)
    if fs.exists(staged.path):
        fs.rename(staged.path, final)
    elif not fs.exists(final):
        raise OSError(f"staged dead-letter file {staged.path} is missing and was never committed")
    return final


def withheld_dead_letters(staged: StagedFile) -> dict[str, int]:
    """A staged dead-letter file of a failed org, left uncommitted: ``{stage: records}``.

    The file stays in the staging folder, which the run removes (or a later run, as a dead run's): it is
    never moved to the dead-letter folder.
    """
    if not fs.exists(staged.path):
        return {"": staged.rows}  # cannot happen within a run (staging is removed last); stages unknown
    stages: dict[str, int] = {}
    for line in fs.read_bytes(staged.path).splitlines():
        if line.strip():
            stage = jsonio.loads(line).get("stage", "")
            stages[stage] = stages.get(stage, 0) + 1
    return stages
