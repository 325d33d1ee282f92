"""deploy/grafana/kring.json reads the metrics the services export, all of them, by their names."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

import shared.metrics  # noqa: F401 - registers Kring's metrics
from tests.deploy.files import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "kring.json"


def _kring_metrics() -> set[str]:
    names = set()
    for metric in REGISTRY.collect():
        if metric.name.startswith("kring_"):
            names.add(metric.name + ("_total" if metric.type == "counter" else ""))
    return names


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_dashboard_is_importable_with_its_datasource_as_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["description"], panel["title"]


def test_every_kring_metric_the_dashboard_reads_exists_and_every_one_is_shown() -> None:
    used = {name for expr in _expressions() for name in re.findall(r"\bkring_[a-z_]+", expr)}
    exported = _kring_metrics()
    assert used - exported == set(), "the dashboard reads metrics no service exports"
    assert exported - used == set(), "a metric no panel shows"


def test_the_outcomes_the_dashboard_names_are_the_consumers_own() -> None:
    consumer = (ROOT / "shared" / "consumer.py").read_text(encoding="utf-8")
    outcomes = set(re.findall(r'CONSUMED\.labels\(consumer, "([a-z_]+)"\)', consumer))
    outcomes |= set(re.findall(r'"([a-z_]+)" if applied else "([a-z_]+)"', consumer)[0])
    named = {o for expr in _expressions() for o in re.findall(r'outcome="([a-z_]+)"', expr)}
    assert named and named <= outcomes


def test_every_alert_reads_metrics_that_exist() -> None:
    from tests.deploy.files import kustomize, named

    rules = named(kustomize("production"), "PrometheusRule", "kring")["spec"]["groups"][0]["rules"]
    used = {name for rule in rules for name in re.findall(r"\bkring_[a-z_]+", rule["expr"])}
    assert used and used <= _kring_metrics()
    assert {rule["alert"] for rule in rules} >= {"KringBusDisconnected", "KringDeadLetters"}
