"""The local Prometheus side (no server here): counters mirrored from the Beam ones, gauges, /healthz logic."""

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common import metrics
from pipeline.monitoring import LocalMetrics, exported_names, org_label


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def samples(local: LocalMetrics) -> dict:
    out = {}
    for family in text_string_to_metric_families(local.scrape().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def mirrored():
    clock = Clock()
    local = LocalMetrics("acme.okta.com", streaming=True, stall_seconds=600, clock=clock)
    metrics.mirror_to(local)
    yield local, clock
    metrics.mirror_to(None)


def test_counter_increments_reach_prometheus_with_the_org_label(mirrored):
    local, _ = mirrored
    metrics.counter("events_read").inc(5)
    metrics.counter("coerced").inc()
    metrics.counter("okta_throttled").inc(2)
    metrics.dead_letter_counter("flatten").inc(3)
    got = samples(local)
    org = (("org", "acme.okta.com"),)
    assert got[("okta_personal_events_read_total", org)] == 5
    assert got[("okta_personal_coerced_total", org)] == 1
    assert got[("okta_personal_okta_throttled_total", org)] == 2
    assert got[("okta_personal_dead_letters_by_stage_total", (("org", "acme.okta.com"), ("stage", "flatten")))] == 3


def test_without_a_mirror_counters_are_beam_only():
    metrics.mirror_to(None)
    metrics.counter("events_read").inc(5)  # no error, nothing served
    metrics.measure("commit_seconds", 1.0)


def test_lag_cursor_age_and_commit_histogram(mirrored):
    local, clock = mirrored
    org = (("org", "acme.okta.com"),)
    assert math.isnan(samples(local)[("okta_personal_lag_seconds", org)])
    metrics.measure("newest_published", clock.now - 30)
    metrics.measure("newest_published", clock.now - 90)  # an older window: the newest stays
    metrics.measure("commit_seconds", 0.3)
    metrics.counter("cursor_stored").inc()
    clock.now += 10
    got = samples(local)
    assert got[("okta_personal_lag_seconds", org)] == 40
    assert got[("okta_personal_cursor_age_seconds", org)] == 10
    assert got[("okta_personal_commit_duration_seconds_count", org)] == 1
    assert got[("okta_personal_commit_duration_seconds_bucket", (("le", "0.5"), ("org", "acme.okta.com")))] == 1
    assert got[("okta_personal_commit_duration_seconds_bucket", (("le", "0.25"), ("org", "acme.okta.com")))] == 0


def test_healthz_turns_unhealthy_when_no_window_closes_or_the_source_is_silent(mirrored):
    local, clock = mirrored
    assert local.healthy()[0]
    clock.now += 601
    ok, why = local.healthy()
    assert not ok and "closed a window" in why
    metrics.measure("window_closed", clock.now)
    ok, why = local.healthy()
    assert not ok and "reached its source" in why
    metrics.counter("okta_pages").inc()  # an Okta page (even an empty one) is the source answering
    assert local.healthy() == (True, "ok")
    assert samples(local)[("okta_personal_healthy", (("org", "acme.okta.com"),))] == 1


def test_a_batch_run_is_healthy_while_it_runs():
    clock = Clock()
    local = LocalMetrics("", streaming=False, stall_seconds=1, clock=clock)
    clock.now += 3600
    assert local.healthy()[0]


def test_every_served_name_is_declared():
    local = LocalMetrics("", streaming=True, stall_seconds=60)
    local.inc("dead_letters_decode", 1)
    local.measure("commit_seconds", 1)
    served = {s.name for f in text_string_to_metric_families(local.scrape().decode()) for s in f.samples}
    served = {n for n in served if not n.endswith("_created")}
    assert served <= exported_names()
    assert "okta_personal_events_read_total" in served and "okta_personal_lag_seconds" in served


def test_org_label_is_the_host_of_the_one_okta_org_and_empty_otherwise():
    from sources.okta.connect import OktaSettings
    from sources.okta.orgs import OrgSpec

    acme = OrgSpec(OktaSettings("https://acme.okta.com"), "personal.*", None)
    beta = OrgSpec(OktaSettings("https://beta.okta.com"), "personal.*", None)
    assert org_label((acme,)) == "acme.okta.com"
    assert org_label((acme, beta)) == ""  # many orgs: each series says its org where it can
    assert org_label(()) == ""  # files and Pub/Sub
