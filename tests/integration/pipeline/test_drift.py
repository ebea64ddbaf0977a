"""Schema drift end to end: a new undocumented field and a new personal.* type show in the summary, the manifest,
the metric and ``okta-personal-lake report``, on the batch path (the Beam graph and the local decode processes)
and on the streaming windows (the local Pub/Sub loop, in this process, against the emulator)."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.helpers import personalize, real_events, run_pipeline, write_jsonl

KNOWN = "personal.user.app_migration.export"
NEW_TYPE = "personal.brand.new_thing"
PROBE = "debugContext.debugData.driftProbe"


def events(first: int, count: int, probe: bool = False, event_type: str = KNOWN) -> list[dict]:
    """``count`` events of one shape (a real event's), a new debugData key in each with ``probe``."""
    made = []
    for i in range(first, first + count):
        event = personalize(real_events()[2], i, event_type)
        if probe:
            event["debugContext"]["debugData"]["driftProbe"] = 7
        made.append(event)
    return made


def drift_samples(local) -> dict:
    """``{(family, label values...): value}`` of the drift families on a LocalMetrics."""
    found = {}
    for family in text_string_to_metric_families(local.scrape().decode()):
        for sample in family.samples:
            if sample.name.startswith("okta_personal_drift_"):
                labels = tuple(v for k, v in sorted(sample.labels.items()) if k != "org")
                found[(sample.name, *labels)] = sample.value
    return found


@pytest.mark.parametrize("processes", [1, 2], ids=["beam-graph", "decode-processes"])
def test_a_batch_run_names_a_new_field_and_a_new_type_everywhere(tmp_path, captured_metrics, processes):
    from tools.report import report

    lake = tmp_path / "lake"
    first = write_jsonl(tmp_path / "a.jsonl", events(0, 30))
    run = run_pipeline(f"--input={first}", f"--output={lake}", f"--decode_processes={processes}")
    assert run.code == 0, run.stderr
    assert "1 new event type(s)" in run.stdout  # a lake's first run: everything is new to it

    second = write_jsonl(tmp_path / "b.jsonl", events(100, 20) + events(200, 3, probe=True)
                         + events(300, 4, event_type=NEW_TYPE))
    run = run_pipeline(f"--input={second}", f"--output={lake}", f"--decode_processes={processes}",
                       "--metrics_port=0", "--drift")
    assert run.code == 0, run.stderr

    # The summary: the new type and its paths, the new path of the known type, nothing else new.
    fresh = len(json.loads(max((lake / "_runs").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())[
        "drift"][NEW_TYPE]["paths"]) + 1
    assert f"schema drift: 1 new event type(s), {fresh} new undocumented path(s)" in run.stdout, run.stdout
    assert f"{NEW_TYPE}: 4 kept events" in run.stdout and "NEW: first kept in this lake" in run.stdout
    assert f"new path: {PROBE}" in run.stdout

    # The manifest.
    [manifest] = [json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json")
                  if json.loads(p.read_text()).get("drift", {}).get(NEW_TYPE)]
    drift = manifest["drift"]
    assert drift[NEW_TYPE]["new"] is True and drift[KNOWN]["events"] == 23 and not drift[KNOWN].get("new")
    probe = drift[KNOWN]["paths"][PROBE]
    assert probe["events"] == 3 and probe["types"] == ["number"] and probe["new"] is True
    assert probe["first"] == probe["last"] == "2021-02-10T04:46:12.033000Z"
    assert not drift[KNOWN]["paths"]["debugContext.debugData.requestUri"].get("new")  # seen by the first run
    assert all(seen.get("new") for seen in drift[NEW_TYPE]["paths"].values())  # paths are new per type

    # The metric (the second run's endpoint).
    [local] = captured_metrics
    samples = drift_samples(local)
    assert samples[("okta_personal_drift_new_event_types_total", NEW_TYPE)] == 1
    assert samples[("okta_personal_drift_new_paths_total", KNOWN, PROBE)] == 1
    assert samples[("okta_personal_drift_undocumented_total", KNOWN, PROBE)] == 3
    assert samples[("okta_personal_drift_events_total", NEW_TYPE)] == 4
    assert ("okta_personal_drift_new_event_types_total", KNOWN) not in samples

    # The report: each path with its first and last sighting and its value types.
    text = report(str(lake))
    [line] = [line for line in text.splitlines() if line.strip().startswith(PROBE)]
    assert line.split()[1:4] == ["3", "number", "2021-02-10T04:46:12.033000Z"] and manifest["run_id"] in line
    assert f"{NEW_TYPE}: 4 kept events in 1 run(s) or window(s); first kept by {manifest['run_id']}" in text


def test_a_run_without_drift_says_nothing_of_it(tmp_path):
    lake = tmp_path / "lake"
    source = write_jsonl(tmp_path / "a.jsonl", events(0, 5, probe=True))
    run = run_pipeline(f"--input={source}", f"--output={lake}", "--decode_processes=1", "--drift=false")
    assert run.code == 0, run.stderr
    assert "schema drift" not in run.stdout
    assert all("drift" not in json.loads(p.read_text()) for p in (lake / "_runs").glob("*.json"))


def test_the_streaming_windows_name_a_new_field_and_a_new_type_everywhere(pubsub_emulator, tmp_path):
    from common import drift as drift_reports
    from common import metrics as beam_metrics
    from pipeline.monitoring import LocalMetrics
    from pipeline.summary import RunSummary
    from streaming.pubsub_loop import PubSubTail
    from tests.support.okta import lake_row_keys
    from tools.report import report

    publish, subscription = pubsub_emulator.topic_and_subscription("okta-drift")
    sent = events(0, 10) + events(100, 2, probe=True) + events(200, 3, event_type=NEW_TYPE)
    for event in sent:
        publish(json.dumps(event).encode(), {})
    lake = tmp_path / "lake"
    local = LocalMetrics("", streaming=True, stall_seconds=600)
    beam_metrics.mirror_to(local)
    beam_metrics.take_drift_totals()  # as the local loop's run does before it starts
    try:
        from tests.support.stream import loop_settings

        tail = PubSubTail(loop_settings(subscription, lake, 2))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len({uuid for uuid, _ in lake_row_keys(lake)}) < len(sent):
            tail.tick()
    finally:
        beam_metrics.mirror_to(None)
    drift = drift_reports.sorted_report(beam_metrics.take_drift_totals())

    # The summary (as pipeline/streaming.py run_loop makes it).
    text = RunSummary("loop-test", str(lake), {}, drift=drift).render()
    assert "schema drift: 2 new event type(s)" in text  # a new lake: both types, all their paths, are new
    assert f"{NEW_TYPE}: 3 kept events" in text and f"{KNOWN}: 12 kept events" in text

    # The windows' records (the streaming counterpart of the manifest).
    records = [json.loads(p.read_text()) for p in (lake / "_drift" / "windows").glob("*.json")]
    merged = drift_reports.merge({}, None)
    for record in records:
        drift_reports.merge(merged, record["drift"])
    assert merged[KNOWN]["paths"][PROBE]["events"] == 2 and merged[KNOWN]["paths"][PROBE]["new"] is True
    assert merged[NEW_TYPE]["new"] is True and merged[NEW_TYPE]["events"] == 3

    # The metric.
    samples = drift_samples(local)
    assert samples[("okta_personal_drift_new_event_types_total", NEW_TYPE)] == 1
    assert samples[("okta_personal_drift_undocumented_total", KNOWN, PROBE)] == 2

    # The report.
    text = report(str(lake))
    [line] = [line for line in text.splitlines() if line.strip().startswith(PROBE)]
    assert line.split()[1:4] == ["2", "number", "2021-02-10T04:46:12.033000Z"] and "loop-test" in line
