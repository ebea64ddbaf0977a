"""The committed Grafana dashboard and Prometheus rules parse, and use only metrics the pipeline (or the audit's
metrics file) exports."""

import json
import re
from pathlib import Path

import yaml

from pipeline import monitoring
from tools.audit import metrics as audit_metrics

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
METRIC = re.compile(r"\bokta_personal_[a-z_]+\b")


def exported_names() -> set[str]:
    """What a run's endpoint serves and what ``okta-personal-lake audit --metrics_file`` writes."""
    return monitoring.exported_names() | audit_metrics.exported_names()


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    expressions += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return expressions


def rules() -> list[dict]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_alert_rules_parse_and_cover_lag_dead_letters_429s_and_a_stalled_tail():
    by_name = {rule["alert"]: rule for rule in rules()}
    assert all({"alert", "expr", "labels", "annotations"} <= set(rule) for rule in by_name.values())
    exprs = " ".join(str(rule["expr"]) for rule in by_name.values())
    for metric in ("okta_personal_lag_seconds", "okta_personal_dead_letters_total",
                   "okta_personal_okta_throttled_total", "okta_personal_healthy", "okta_personal_audit_missing_events",
                   "okta_personal_audit_audited_until_seconds"):
        assert metric in exprs, metric


def test_every_metric_the_dashboard_and_rules_use_is_exported():
    used = set()
    for text in dashboard_expressions() + [str(rule["expr"]) for rule in rules()] + [
            json.dumps(rule.get("annotations", {})) for rule in rules()]:
        used |= set(METRIC.findall(text))
    assert used, "no metric found: the pattern or the files changed"
    missing = used - exported_names()
    assert not missing, f"referenced but never exported: {sorted(missing)}"


def test_the_dashboard_is_a_grafana_dashboard():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(p["targets"] for p in dashboard["panels"])


def test_the_monitoring_page_lists_every_exported_metric():
    page = (MONITORING.parent / "docs" / "operations" / "monitoring.md").read_text()
    names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported_names()}
    missing = [n for n in sorted(names) if f"`{n}`" not in page]
    assert not missing, missing
