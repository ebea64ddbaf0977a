"""Shared test helpers: fixtures on disk, running the pipeline, reading the lake back."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import gzip
import io
import json
import subprocess
import sys
import uuid as uuidlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "real-okta"
GOLDEN = REPO / "tests" / "golden"

PERSONAL_TYPES = ("personal.admin.configuration.update", "personal.user.app_migration.export")


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def real_events() -> list[dict]:
    """The 60 real public LogEvents (none personal.*), as dicts."""
    return load_jsonl(FIXTURES / "events.jsonl")


def personalize(event: dict, index: int, event_type: str | None = None) -> dict:
    """A copy of a real event turned into a personal.* one with a unique uuid."""
    copied = copy.deepcopy(event)
    copied["eventType"] = event_type or PERSONAL_TYPES[index % 2]
    copied["uuid"] = str(uuidlib.UUID(int=index + 1))
    return copied


def write_jsonl(path: Path, items, gz: bool = False) -> Path:
    lines = []
    for item in items:
        lines.append(item if isinstance(item, (bytes, str)) else json.dumps(item))
    data = b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mixed_export(folder: Path) -> tuple[list[Path], set[str]]:
    """A replay input with every kind of line (for the decode processes' tests): FOLDER/in/export.jsonl (bad
    lines of every kind, duplicates far apart, escaped event types, many partitions) and a gzipped
    FOLDER/in/more.jsonl.gz; also the uuids of selected events whose type is written with a JSON escape."""
    real = real_events()
    types = ["personal.user.app_migration.export", "personal.admin.configuration.update", "personal.a.b",
             "user.session.start", "user.authentication.sso"]
    lines: list = []
    for name in ("bad-lines", "targets", "nulls-and-time", "text"):
        lines += (GOLDEN / f"{name}.input.jsonl").read_bytes().splitlines()
    # duplicates.input.jsonl without its re-sent uuids of different content: which copy wins follows the order
    # the batches arrive in, which decode processes do not fix (dup-b's other lines; dup-a inside an envelope,
    # whose raw_event is not its line's).
    duplicates = (GOLDEN / "duplicates.input.jsonl").read_bytes().splitlines()
    for line in duplicates:
        if b'"dup-b"' in line and line != duplicates[3]:
            continue
        if line.startswith(b'{"eventType": "com.okta.event_hook"') and b'"dup-a"' in line:
            envelope = json.loads(line)
            envelope["data"]["events"] = [e for e in envelope["data"]["events"] if e.get("uuid") != "dup-a"]
            assert envelope["data"]["events"]
            line = json.dumps(envelope).encode()
        lines.append(line)
    events = []
    for i in range(240):
        event = copy.deepcopy(real[i % len(real)])
        event["eventType"] = types[i % len(types)]
        event["uuid"] = str(uuidlib.UUID(int=10_000 + i))
        event["published"] = f"2026-11-{1 + (i // 5) % 28:02d}T{i % 24:02d}:15:00.{i % 1000:03d}Z"
        events.append(event)
    texts = []
    for event in events:
        text = json.dumps(event)
        if event["uuid"].endswith(("3", "7")):  # an escaped type: selected or not, judged exactly
            text = text.replace('"eventType": "personal.', '"eventType": "personal\\u002e')
            text = text.replace('"eventType": "user.', '"eventType": "\\u0075ser.')
        texts.append(text)
    lines += texts
    # Re-sent byte for byte (raw_event keeps the line, so which copy wins must not matter), far from the
    # first copy: another range.
    lines += texts[::9]
    lines += [b"{not json at the end", b'{"uuid": "x", "eventType": "personal.late", "published": 7}']
    main = write_jsonl(folder / "in" / "export.jsonl", lines)
    extra = write_jsonl(folder / "in" / "more.jsonl.gz", texts[:30:3] + [b"nope"], gz=True)
    escaped = {e["uuid"] for e in events if e["uuid"].endswith(("3", "7")) and e["eventType"].startswith("personal.")}
    return [main, extra], escaped


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def count(self, label: str) -> int:
        """A number from the summary, e.g. count('events read')."""
        for line in self.stdout.splitlines():
            stripped = line.strip()
            if stripped.startswith(label + " ") and stripped[len(label):].strip()[:1].isdigit():
                return int(stripped[len(label):].split()[0].replace(",", ""))
        raise AssertionError(f"{label!r} not in summary:\n{self.stdout}")


def run_pipeline(*args: str) -> Run:
    """Run ``python -m pipeline ARGS`` in this process (faster than a subprocess)."""
    from pipeline.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--quiet", *args])
    return Run(code, out.getvalue(), err.getvalue())


def run_command(*args: str) -> Run:
    """``okta-personal-lake ARGS`` in a fresh process (``python -m tools``, this checkout), as a user runs it:
    nothing this test process configured (Beam's filesystem options, ...) reaches it."""
    done = subprocess.run([sys.executable, "-m", "tools", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    return Run(done.returncode, done.stdout, done.stderr)


def use_in_this_process(extra: list[str]) -> None:
    """Let this process's own file operations reach the stand-in of ``extra`` (Beam's S3 options; runs in
    this process set it too)."""
    from storage import fs

    fs.configure(extra)


def read_lake(lake: Path) -> list[dict]:
    """Every row of the lake, partition columns included, sorted by (uuid, target_index)."""
    dataset = ds.dataset(str(lake), format="parquet", partitioning="hive")
    rows = dataset.to_table().to_pylist()
    for row in rows:
        if isinstance(row.get("event_date"), dt.date):
            row["event_date"] = row["event_date"].isoformat()
        row["event_date"] = str(row["event_date"])
    return sorted(rows, key=lambda r: (r["uuid"], -1 if r["target_index"] is None else r["target_index"]))


def dead_letters(lake: Path) -> list[dict]:
    records = []
    for path in sorted((Path(lake) / "_dead_letter").glob("*/*.jsonl")):
        records += load_jsonl(path)
    return records


class SvgShapes(HTMLParser):
    """The attributes of the SVG shapes (rect, path) a coverage report draws, by class; ``feed`` it the HTML."""

    def __init__(self):
        super().__init__()
        self.shapes: dict[str, list[dict]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("rect", "path") and "class" in attrs:
            self.shapes.setdefault(attrs["class"], []).append(attrs)


def decode_outcome(batch, selection, raw_event: bool = True, typed=None) -> tuple:
    """Everything the decode + flatten functions make of ``batch``: counts, each kept event's envelope,
    row values and raw text, the flattened rows and every dead letter (to compare two ways of decoding)."""
    from transforms.decode import decode_batch
    from transforms.flatten import Flattener

    flattener = Flattener(raw_event=raw_event)
    decoded = decode_batch(batch, 16 * 1024 * 1024, selection, flattener.prepare, typed=typed)
    flat = flattener.flatten(decoded.events)
    events = [(e.uuid, e.event_type, e.published, e.raw, e.position, e.index, type(e.prepared).__name__,
               repr(e.prepared) if isinstance(e.prepared, Exception) else e.prepared) for e in decoded.events]
    rows = {key: flat.tables[key].to_pylist() for key in flat.tables}

    def dead(records):  # all but the time of writing
        return [{k: v for k, v in record.items() if k != "dead_lettered_at"} for record in records]

    return (decoded.read, decoded.filtered, events, dead(decoded.dead_letters), rows, flat.events,
            dead(flat.dead_letters), flat.duplicates, flat.coerced)


def window_settings(lake, *, job: str = "job1", length: float = 60, dedupe_horizon: float = 3600,
                    event_types: str = "personal.*", raw_event: bool = True, max_payload_bytes: int = 1 << 20,
                    quiet: bool = True, **extra):
    """The windows of a streaming test run into ``lake`` (its dead letters in ``lake/_dead_letter``)."""
    from sinks.lake.settings import LakeSettings
    from streaming.settings import WindowSettings
    from transforms.settings import DecodeSettings

    lake = str(lake)
    return WindowSettings(length=length, dedupe_horizon=dedupe_horizon,
                          lake=LakeSettings(lake, f"{lake}/_dead_letter"),
                          decode=DecodeSettings(event_types, raw_event, max_payload_bytes), job=job, quiet=quiet,
                          **extra)
