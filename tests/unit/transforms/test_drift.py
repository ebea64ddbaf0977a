"""Schema drift of kept events: what a path is, what the signature cache counts exactly, and what it can miss.

The watch is compared with an exhaustive one (every event walked) on a corpus of every shape the decode paths
make: JSON Lines lines of generated and real events (the typed decoder's and the full decode's), events taken
out of an array and out of an Event Hook envelope (dicts), events with a new key, a key gone, null objects.
"""

from __future__ import annotations

import copy
import json

import pytest

from common.drift import MAX_PATHS, merge
from devtools.eventgen import generated_events
from tests.support.helpers import personalize, real_events
from transforms.decode import decode_batch
from transforms.drift import DOCUMENTED, MIXED_EVERY, DriftWatch, leaf_paths, new_watch, undocumented_paths
from transforms.flatten import Flattener
from transforms.records import RawBatch
from transforms.selection import EventTypeSelection
from transforms.shortcuts import LineDecoder

SELECTION = EventTypeSelection.parse("personal.*")


def kept(payloads: list[bytes], flattener=None):
    """The kept events of one batch as the three paths make them (typed decoder, flattener's rows), and the
    flattener's type changes."""
    flattener = flattener or Flattener()
    decoded = decode_batch(RawBatch("in", "line", list(range(len(payloads))), payloads), 1 << 20, SELECTION,
                           flattener.prepare, typed=LineDecoder())
    return decoded.events, flattener.flatten(decoded.events).type_changes


def watch_all(batches, watch: DriftWatch) -> dict:
    report: dict = {}
    for payloads in batches:
        events, changes = kept(payloads)
        watch.observe(events, changes)
        merge(report, watch.take())
    return report


def exhaustive() -> DriftWatch:
    return DriftWatch(sample_every=1, cpu_budget=None)  # every event walked


def counts(report: dict) -> dict:
    """A report without the walked counts and value types (what the cache claims exact)."""
    return {t: (e["events"], e["more_paths"], e["changed"],
                {p: (s["events"], s["first"], s["last"]) for p, s in e["paths"].items()}) for t, e in report.items()}


def corpus() -> list[list[bytes]]:
    events = [e for e in generated_events(1500, seed=11) if e["eventType"].startswith("personal.")]
    for i, event in enumerate(events):
        if i % 50 == 7:
            event["debugContext"]["debugData"]["riskLevel"] = "LOW"  # a new key in a few events
        if i % 70 == 3:
            del event["debugContext"]["debugData"]["url"]  # a key gone
        if i % 90 == 5:
            event["transaction"]["detail"] = {"requestApiTokenId": "00T1"}  # {} became an object with a key
    real = [personalize(e, i) for i, e in enumerate(real_events())]
    lines = [json.dumps(e).encode() for e in events + real]
    page = json.dumps([personalize(e, 500 + i) for i, e in enumerate(real_events()[:12])]).encode()
    hook = json.dumps({"eventType": "com.okta.event_hook", "data": {"events": [
        personalize(e, 700 + i) for i, e in enumerate(real_events()[12:20])]}}).encode()
    batches = [lines[i:i + 100] for i in range(0, len(lines), 100)]
    batches[1] += [page, hook]
    return batches


def test_a_path_follows_keys_and_nesting_only():
    document = {"a": {"b": 1, "c": None, "d": {}}, "e": [], "f": ["x", 2], "g": [{"h": True}, {"i": "s"}, "j"],
                "k": [[{"l": 1}]], "m": {"n": []}}
    assert leaf_paths(document) == {"a.b": {"number"}, "a.c": {"null"}, "a.d": {"object"}, "e": {"array"},
                                    "f": {"array"}, "g[].h": {"boolean"}, "g[].i": {"string"}, "g": {"array"},
                                    "k[][].l": {"number"}, "m.n": {"array"}}


def test_the_schema_and_what_holds_it_are_not_drift():
    event = personalize(real_events()[2], 0)
    found = undocumented_paths(event)
    assert {"actor.id", "target[].id", "uuid", "published", "eventType", "client.userAgent.rawUserAgent"} <= DOCUMENTED
    assert {"actor", "target", "target[]", "client", "client.userAgent", "transaction"} <= DOCUMENTED
    assert not set(found) & DOCUMENTED
    assert "debugContext.debugData.requestUri" in found and "client.zone" in found
    assert undocumented_paths({**event, "actor": None, "target": None}).keys() == {
        p: t for p, t in found.items() if not p.startswith(("actor.", "target["))}.keys()


def test_the_cached_watch_is_exact_where_it_claims_and_an_estimate_elsewhere():
    """Exact: kept events per type, type changes, which types; every path it lists is real. Per-path counts of
    events not walked are their signature's walked event's paths (an estimate: the corpus has collisions)."""
    batches = corpus()
    ours, truth = watch_all(batches, DriftWatch()), watch_all(batches, exhaustive())
    assert ours.keys() == truth.keys()
    for event_type, entry in ours.items():
        real = truth[event_type]
        assert (entry["events"], entry["changed"]) == (real["events"], real["changed"])
        assert entry["paths"].keys() <= real["paths"].keys()
        for path, seen in entry["paths"].items():  # value types: those of the walked events, a part of all
            assert set(seen["types"]) <= set(real["paths"][path]["types"])
    export = ours["personal.user.app_migration.export"]
    assert export["walked"] < export["events"] / 5  # most events took a signature's paths
    assert sum(e["events"] for e in truth.values()) == sum(e["walked"] for e in truth.values())


def test_walking_every_event_counts_each_path_exactly():
    batches = corpus()
    truth = watch_all(batches, exhaustive())
    added = sum(e["paths"]["debugContext.debugData.riskLevel"]["events"] for e in truth.values())
    assert added == sum(line.count(b'"riskLevel"') for batch in batches for line in batch)


def test_a_key_added_to_one_event_is_found_in_that_event():
    events = [e for e in generated_events(3000, seed=3) if e["eventType"] == "personal.user.app_migration.export"]
    lines = [json.dumps(e).encode() for e in events]
    changed = copy.deepcopy(events[-1])
    changed["target"] = (changed.get("target") or [])[:1] or None
    changed["debugContext"]["debugData"]["newKnob"] = "on"
    report = watch_all([lines, [json.dumps(changed).encode()]], DriftWatch())
    seen = report["personal.user.app_migration.export"]["paths"]["debugContext.debugData.newKnob"]
    assert seen["events"] == 1 and seen["types"] == ["string"]


def test_a_renamed_key_is_seen_late_by_the_sample_then_exactly(monkeypatch):
    """The documented miss: same type, targets and key count, another key. Counted under the first shape until a
    sample walk meets it; the signature then is ambiguous: a finer one, then a mixed one."""
    base = personalize(real_events()[2], 0, "personal.a")
    first = [json.dumps({**base, "uuid": f"a{i}", "debugContext": {"debugData": {"alpha": 1}}}).encode()
             for i in range(5)]
    renamed = [json.dumps({**base, "uuid": f"b{i}", "debugContext": {"debugData": {"omega": 1}}}).encode()
               for i in range(12)]
    watch = DriftWatch(sample_every=8)
    report = watch_all([first + renamed], watch)["personal.a"]["paths"]
    # Events 1-5 walked first / cached; the 8th kept event is the sample: renamed events 1-2 were counted as alpha.
    assert report["debugContext.debugData.alpha"]["events"] == 5 + 2
    assert report["debugContext.debugData.omega"]["events"] == 12 - 2
    # Ambiguous: its events take a finer signature (the count of '":' too), cached again; both renamed shapes have
    # it, so a later sample finds it ambiguous as well: mixed, one event in MIXED_EVERY walked, its paths taken by
    # the next ones. The walks stay bounded, every event is counted once.
    later = watch_all([(renamed + first) * 4], watch)["personal.a"]
    assert later["events"] == 4 * 17 and later["walked"] <= 2 + 4 * 17 // MIXED_EVERY + 4 * 17 // 8
    paths = later["paths"]
    assert paths["debugContext.debugData.alpha"]["events"] + paths["debugContext.debugData.omega"]["events"] == 68


def test_documented_fields_of_another_type_are_counted_per_event_at_their_documented_path():
    base = personalize(real_events()[2], 0)
    target = {"id": "0oa1", "type": "AppInstance", "alternateId": "app"}
    events = [
        {**base, "uuid": "n1", "actor": {**base["actor"], "id": 7}, "target": [{**target, "alternateId": True},
                                                                              {**target, "alternateId": False}]},
        {**base, "uuid": "n2", "version": 0},
        {**base, "uuid": "w1", "actor": "a string"},
        {**base, "uuid": "w2", "target": [target, {**target, "id": {"x": 1}}]},
        {**base, "uuid": "w3", "target": [target, "not an object"]},
    ]
    events, changes = kept([json.dumps(e).encode() for e in events])
    watch = DriftWatch()
    watch.observe(events, changes)
    changed = watch.take()[base["eventType"]]["changed"]
    assert changed == {"actor.id": {"number": 1}, "target[].alternateId": {"boolean": 1}, "version": {"number": 1},
                       "actor": {"string": 1}, "target[].id": {"object": 1}, "target[]": {"string": 1}}


def test_an_open_map_keyed_by_ids_stays_bounded():
    base = personalize(real_events()[2], 0, "personal.a")
    lines = [json.dumps({**base, "uuid": f"u{i}", "debugContext": {"debugData": {f"id{i:05d}": 1}}}).encode()
             for i in range(MAX_PATHS + 40)]
    report = watch_all([lines], exhaustive())["personal.a"]
    ids = [p for p in report["paths"] if p.startswith("debugContext.debugData.id")]
    assert len(report["paths"]) == MAX_PATHS
    assert len(ids) + report["more_paths"] == MAX_PATHS + 40  # each id sighting listed or counted past the cap
    assert report["events"] == MAX_PATHS + 40


def test_reports_add_up_whatever_the_takes():
    batches = corpus()
    watch = DriftWatch()
    for payloads in batches:
        events, changes = kept(payloads)
        watch.observe(events, changes)
    once = watch.take()
    assert counts(once) == counts(watch_all(batches, DriftWatch()))
    assert watch.take() == {}


@pytest.mark.parametrize("drop", [True, False])
def test_a_discarded_window_counts_nothing(drop):
    watch = DriftWatch()
    events, changes = kept(corpus()[0])
    watch.observe(events, changes)
    if drop:
        watch.discard()
        assert watch.take() == {}
    else:
        assert watch.take()


def test_the_summary_lists_what_is_new_and_bounds_the_list():
    from common.drift import add_path, type_entry
    from pipeline.summary import MAX_NEW_PATHS, drift_lines

    report: dict = {}
    known, fresh = type_entry(report, "personal.a"), type_entry(report, "personal.b")
    fresh["new"] = True
    for i in range(MAX_NEW_PATHS + 5):
        add_path(known, f"x.k{i:03d}", 2, ["string"], "t1", "t2")
        known["paths"][f"x.k{i:03d}"]["new"] = True
        add_path(fresh, f"y.k{i}", 1, ["null"], "t1", "t1")
    add_path(known, "x.old", 2, ["number"], "t1", "t2")
    lines = drift_lines(report)
    assert lines[0].strip().startswith(f"schema drift: 1 new event type(s), {MAX_NEW_PATHS + 5} new undocumented")
    assert sum("new path: x.k" in line for line in lines) == MAX_NEW_PATHS
    assert any("... 5 more new path(s)" in line for line in lines) and any("known paths: 1" in line for line in lines)
    assert any("personal.b: 0 kept events, 45 undocumented path(s)  NEW" in line for line in lines)
    assert not any("new path: y." in line for line in lines)  # a new type's paths are all new: not listed


class FakeCpu:
    """A process CPU clock the test moves: each call returns ``now``; ``step`` is added after every call."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_over_its_cpu_budget_the_watch_counts_batches_per_type_and_still_walks_a_new_type():
    batches = corpus()
    known = [line for batch in batches for line in batch[:-2] if b"personal.admin" in line][:200]
    new_type = [line.replace(b"personal.admin.configuration.update", b"personal.brand.new") for line in known[:3]]
    # Each observe seems to take 1 s of a process that did nothing else: far over 2% once MIN_SPEND is spent.
    watch = DriftWatch(clock=FakeCpu(step=0.5))
    report: dict = {}
    for payloads in (known[:100], known[100:], new_type):
        events, changes = kept(payloads)
        watch.observe(events, changes)
        merge(report, watch.take())
    admin = report["personal.admin.configuration.update"]
    assert admin["events"] == 200 and admin["unwatched"] == 100  # the second batch: counted, not watched
    assert report["personal.brand.new"]["events"] == 3 and report["personal.brand.new"]["walked"] == 1
    assert report["personal.brand.new"]["unwatched"] == 2 and report["personal.brand.new"]["paths"]


def test_under_its_cpu_budget_or_without_one_every_event_is_watched():
    batches = corpus()
    for watch in (DriftWatch(clock=FakeCpu(step=0.0)), DriftWatch(cpu_budget=None, clock=FakeCpu(step=1.0))):
        report = watch_all(batches, watch)
        assert all(entry["unwatched"] == 0 for entry in report.values())
        assert sum(e["events"] for e in report.values()) == sum(
            e["events"] for e in watch_all(batches, exhaustive()).values())


def test_a_cpu_share_of_one_watches_every_event_and_drift_false_watches_none():
    assert new_watch(True, 1.0).cpu_budget is None
    assert new_watch(True, 0.02).cpu_budget == 0.02
    assert new_watch(False, 0.02) is None
