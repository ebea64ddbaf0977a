"""Watch kept events for schema drift: undocumented JSON paths, documented fields whose JSON type changed (no Beam).

:class:`DriftWatch` is fed every kept event (a flattened batch's events, with the flattener's type changes) by
the three paths that flatten: the Beam graph (:mod:`transforms.beam`), the local decode processes
(:mod:`sources.files.worker`) and the streaming windows (:mod:`streaming.window_buffer`); ``take()`` hands over a
drift report (:mod:`common.drift`) of what it saw since the last one.

**Undocumented paths.** An event's paths are the leaf paths of its JSON (:func:`leaf_paths`: keys joined by
``.``, ``[]`` through an array of objects), minus the schema's columns and the objects that hold them
(:data:`DOCUMENTED`). Walking an event key by key costs more than decoding it (~16 us on a loaded 2-core
machine against ~3 us for the typed decode; ~5 us unloaded), so only some events are walked; each other event
takes the paths of the walked event with the same *signature*: its type, the number of ``"`` in its text (two a
key, two a string value; a dict from a page or an envelope is serialised first; one byte counted in C, ~1 us a
2 KB event on a loaded machine, where ``":`` costs twice that) and its number of targets. Walked are:

- the first event of each signature (per process),
- one event in :data:`SAMPLE_EVERY`; a signature the sample finds holding another set of paths becomes
  *ambiguous*: its later events take a finer signature (the number of ``{`` too), walked and sampled the same
  way, and a finer signature found ambiguous has every later event walked,
- every event once :data:`MAX_SIGNATURES` signatures are cached.

What that can miss (docs/operations/drift.md says it for users): an event whose paths differ from the walked
event with its signature (same type and targets, same number of quotes: a key renamed, a key gone while another
came, a string value become a key) is counted under that walked event's paths until a sample walk meets the
difference; its own paths are missed if no walked event carries them. A key *added* to a shape changes the count,
so the first event carrying it is walked. Value types are those of the walked events only. The events per type,
the type changes and the types are exact.

**A CPU budget.** Counting an event's quotes reads all of its bytes (~1 us for a 2 KB event), so where kept
events are most of the input (the 1M-event benchmark keeps one line in four) the watch would cost ~4% of a
replay. Once it has spent :data:`MIN_SPEND_SECONDS`, the watch keeps its own CPU time under :data:`CPU_BUDGET` of
its process's: a batch that comes while it is over is not watched, only counted per type (``unwatched``), and the
first event of a type the watch has not seen is walked all the same. In an org where ``personal.*`` events are a
small share of the log, every kept event is watched; the report says how many were not.

**Type changes** of documented fields cost nothing here: the flattener reports the coerced fields and the wrong
type that made a dead letter (:attr:`transforms.flatten.Flattened.type_changes`), exactly, per event.
"""

from __future__ import annotations

import time
from collections import Counter
from operator import itemgetter

from common.drift import add_change, add_path, published_text, type_entry
from schemas.fields import COLUMNS
from transforms import jsonio

#: One kept event in this many is walked whatever its signature (the first of each signature always is).
SAMPLE_EVERY = 1024
#: Of a mixed signature's events (a finer signature found holding several sets of paths), one in this many is
#: walked and its paths taken by the next ones.
MIXED_EVERY = 16
#: Signatures remembered per process; past this, events of unremembered signatures are all walked.
MAX_SIGNATURES = 4096
#: The watch's CPU time, as a share of its process's since the watch began, past which batches go unwatched...
CPU_BUDGET = 0.02
#: ... once it has spent this much (a small run, a stream's windows: every kept event is watched).
MIN_SPEND_SECONDS = 0.05
#: The signature counts this byte (twice a key, twice a string value); an ambiguous one counts FINER too.
BASE = b'"'
FINER = b'":'
_EVENT_TYPE = itemgetter(2)  # ParsedEvent.event_type
_TYPE_NAMES = {str: "string", int: "number", float: "number", bool: "boolean", type(None): "null", dict: "object"}


def _documented() -> frozenset:
    paths = {c.path for c in COLUMNS if c.origin in ("event", "target")} | {"eventType"}
    holders = set()
    for path in paths:
        parts = path.split(".")
        for i in range(1, len(parts)):
            holder = ".".join(parts[:i])
            holders |= {holder, holder[:-2]} if holder.endswith("[]") else {holder}
    return frozenset(paths | holders)


#: The schema's leaf paths (``actor.id``, ``target[].id``, the envelope, ``eventType``) and the objects holding
#: them (``actor``, ``target``, ``target[]``, ``client.userAgent``, ...): not drift, whatever they hold.
DOCUMENTED = _documented()


def leaf_paths(document) -> dict[str, set]:
    """``{path: {JSON types}}`` of every leaf of a decoded JSON value.

    A leaf is a scalar, a null, an empty object, or an array's scalar, null or empty items (all ``array`` at the
    array's own path); objects and arrays inside an array are walked under ``path[]``. So the paths follow the
    keys and their nesting only: ``"x": []`` and ``"x": ["a"]`` both give ``x``.
    """
    out: dict[str, set] = {}
    _walk(document, "", out)
    return out


def _walk(value, path: str, out: dict) -> None:
    kind = type(value)
    if kind is dict and value:
        for key, sub in value.items():
            _walk(sub, f"{path}.{key}" if path else key, out)
        return
    if kind is list:
        scalars = not value
        for item in value:
            if type(item) in (dict, list) and item:
                _walk(item, path + "[]", out)
            else:
                scalars = True
        if not scalars:
            return
        name = "array"
    else:
        name = _TYPE_NAMES.get(kind) or jsonio.json_type(value)
    found = out.get(path)
    if found is None:
        out[path] = {name}
    else:
        found.add(name)


def undocumented_paths(document) -> dict[str, set]:
    """:func:`leaf_paths` that are not :data:`DOCUMENTED`."""
    return {path: types for path, types in leaf_paths(document).items() if path not in DOCUMENTED}


class _Signature:
    """The walked paths of one signature, and the published times of its events not walked since the last take."""

    __slots__ = ("event_type", "paths", "published", "mixed", "left")

    def __init__(self, event_type: str, paths: dict[str, set], mixed: bool = False):
        self.event_type, self.paths, self.published = event_type, paths, []
        self.mixed = mixed  # a finer signature found ambiguous: one event in MIXED_EVERY walked, its paths then kept
        self.left = MIXED_EVERY


_AMBIGUOUS = _Signature("", {})  # a signature whose events hold different paths: its events take a finer one


def new_watch(drift: bool, cpu_share: float) -> DriftWatch | None:
    """The watch a decode path keeps under ``--drift`` and ``--drift_cpu_share`` (None: not watching)."""
    if not drift:
        return None
    return DriftWatch(cpu_budget=None if cpu_share >= 1 else cpu_share)


class DriftWatch:
    """Kept events in, drift reports out (``take``); one per process and path (it caches signatures)."""

    def __init__(self, sample_every: int = SAMPLE_EVERY, max_signatures: int = MAX_SIGNATURES,
                 cpu_budget: float | None = CPU_BUDGET, clock=time.process_time):
        """``cpu_budget``: see :data:`CPU_BUDGET` (None: watch every event); ``clock``: the process's CPU seconds."""
        self.sample_every, self.max_signatures = sample_every, max_signatures
        self.cpu_budget, self._clock = cpu_budget, clock
        self._began, self._spent = clock(), 0.0
        self._types: set = set()  # event types walked at least once
        self._signatures: dict[tuple, _Signature] = {}
        self._countdown = sample_every
        self._retired: list[_Signature] = []  # signatures found ambiguous since the last take
        self._walked: dict = {}  # a drift report of the walked events and the type changes, since the last take

    def observe(self, events, type_changes: dict | None = None) -> None:
        """Watch kept events (:class:`transforms.records.ParsedEvent`, their ``prepared`` rows made) and count
        ``type_changes`` (``{(event_type, path, got): events}``, from the flattener)."""
        if self.cpu_budget is None:
            self._watch(events)
        elif events:
            started = self._clock()
            if self._spent > max(MIN_SPEND_SECONDS, self.cpu_budget * (started - self._began)):
                self._count_only(events)
            else:
                self._watch(events)
            self._spent += self._clock() - started
        for (event_type, path, got), count in (type_changes or {}).items():
            add_change(type_entry(self._walked, event_type), path, got, count)

    def _count_only(self, events) -> None:
        """A batch over the budget: its events counted per type; the first of a type never walked is walked."""
        for event_type, count in Counter(map(_EVENT_TYPE, events)).items():
            if event_type not in self._types:
                first = next(event for event in events if event.event_type == event_type)
                text = first.raw if first.raw is not None else jsonio.dumps(first.event)
                self._walk(first, text, (event_type, -1, -1), None)
                count -= 1
            entry = type_entry(self._walked, event_type)
            entry["events"] += count
            entry["unwatched"] += count

    def _watch(self, events) -> None:
        get, dumps, base, finer = self._signatures.get, jsonio.dumps, BASE, FINER
        countdown = self._countdown
        for event in events:
            # Unpacked, not read by name: a NamedTuple's attributes cost more than this whole step.
            document, _, event_type, published, text, _, _, _, _, prepared, _ = event
            if text is None:
                text = dumps(document)
            key = (event_type, text.count(base), len(prepared[1]) if isinstance(prepared, tuple) else -1)
            found = get(key)
            if found is _AMBIGUOUS:  # a finer signature
                key += (text.count(finer),)
                found = get(key)
            countdown -= 1
            if found is not None and found.mixed:
                found.left -= 1
                if not found.left:
                    found = None  # walked; its paths replace the signature's
            if found is None or found is _AMBIGUOUS or not countdown:
                if not countdown:
                    countdown = self.sample_every
                self._walk(event, text, key, found)
            else:
                found.published.append(published)
        self._countdown = countdown

    def _walk(self, event, text: bytes, key: tuple, cached: _Signature | None) -> None:
        document = event.event if event.event is not None else jsonio.loads(text)
        paths = undocumented_paths(document)
        self._types.add(event.event_type)
        entry = type_entry(self._walked, event.event_type)
        entry["events"] += 1
        entry["walked"] += 1
        published = published_text(event.published)
        for path, types in paths.items():
            add_path(entry, path, 1, types, published, published)
        cached = self._signatures.get(key) if cached is None else cached
        if cached is None:
            if len(self._signatures) < self.max_signatures:
                self._signatures[key] = _Signature(event.event_type, paths)
        elif cached.mixed:
            self._signatures[key] = _Signature(event.event_type, paths, mixed=True)
            self._retired.append(cached)  # its events not walked keep the paths it had (take counts them)
        elif cached is not _AMBIGUOUS:
            if paths.keys() == cached.paths.keys():
                for path, types in paths.items():
                    cached.paths[path] |= types
            else:  # a first signature: finer ones from now on; a finer one: mixed
                self._signatures[key] = _Signature(event.event_type, paths, mixed=True) if len(key) > 3 \
                    else _AMBIGUOUS
                self._retired.append(cached)  # its events not walked so far keep the paths it had

    def take(self) -> dict:
        """The drift report of everything observed since the last ``take`` (``{}`` when nothing was)."""
        report, self._walked = self._walked, {}
        retired, self._retired = self._retired, []
        for signature in [*self._signatures.values(), *retired]:
            published = signature.published
            if not published:
                continue
            entry = type_entry(report, signature.event_type)
            entry["events"] += len(published)
            first, last = published_text(min(published)), published_text(max(published))
            for path, types in signature.paths.items():
                add_path(entry, path, len(published), types, first, last)
            signature.published = []
        return report

    def discard(self) -> None:
        """Forget what was observed since the last ``take`` (a dropped window: its events are read again)."""
        self.take()
