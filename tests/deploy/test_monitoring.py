"""Alerts and the dashboard read series that Revive really exports: every metric their queries name is
found in a real scrape of the services and the gateway after a restoration, and the alerting rules
pass their promtool unit tests (and fail them when a threshold is wrong)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy import validate
from tests.gateway.test_http_api import restore
from tests.photos import encode, portrait

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:revive|grpc_server)_[a-z0-9_]+)\b")


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load(validate.ALERTS.read_text())["spec"]["groups"]
    return exprs + [rule["expr"] for group in rules for rule in group["rules"]]


def scraped(port: int) -> set[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_every_metric_the_dashboard_and_alerts_query_is_exported(gateway, detector, generator, upscaler):
    reply = restore(gateway.url, [("p.jpg", encode(portrait(120, 150)))], candidates=2, upscale=2)
    assert reply.status_code == 200, reply.text
    names = scraped(gateway.gateway.http_port)
    for server in (detector, generator, upscaler):
        names |= scraped(server.metrics_port)
    wanted = {name for query in queries() for name in METRIC.findall(query)}
    assert len(wanted) >= 15
    missing = sorted(wanted - names)
    assert not missing, f"queried but never exported: {missing}"


def test_alerting_rules_pass_their_unit_tests_and_a_wrong_threshold_fails_them(tmp_path):
    try:
        assert not validate.alert_rule_problems()
        broken = tmp_path / "alerts.yaml"
        broken.write_text(validate.ALERTS.read_text().replace("> 0.05", "> 0.5"))
        assert validate.alert_rule_problems(broken)
    except validate.ToolMissing as missing:
        pytest.skip(str(missing))
