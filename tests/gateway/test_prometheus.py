"""Operators' view: the metrics pass promtool's lint and a real Prometheus scrapes and queries them."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.cluster import free_port
from tests.photos import encode, portrait

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL), reason="Prometheus is not installed (apt-get install prometheus; .ci/run does)"
)



def exposition(url: str) -> str:
    return requests.get(url, timeout=10).text


def test_every_metrics_endpoint_passes_promtool(gateway, detector, generator, upscaler):
    requests.post(f"{gateway.url}/v1/restorations", files=[("photos", ("p.jpg", encode(portrait(64, 64)), "image/jpeg"))],
                  data={"candidates": "1"}, timeout=120).raise_for_status()
    endpoints = [f"{gateway.url}/metrics"] + [f"http://127.0.0.1:{s.metrics_port}/metrics" for s in (detector, generator, upscaler)]
    for endpoint in endpoints:
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition(endpoint), capture_output=True, text=True)
        assert lint.returncode == 0, f"{endpoint}: {lint.stdout}{lint.stderr}"


def test_prometheus_scrapes_the_cluster_and_answers_queries(gateway, detector, generator, upscaler, tmp_path: Path):
    gateway_target = gateway.url.removeprefix("http://")
    service_targets = [f"127.0.0.1:{s.metrics_port}" for s in (detector, generator, upscaler)]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: gateway\n    static_configs: [{{targets: ['{gateway_target}']}}]\n"
        f"  - job_name: services\n    static_configs: [{{targets: {service_targets}}}]\n"
    )
    port = free_port()
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"

    def query(expression: str) -> list[dict]:
        reply = requests.get(api, params={"query": expression}, timeout=10).json()
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    try:
        requests.post(f"{gateway.url}/v1/restorations", files=[("photos", ("p.jpg", encode(portrait(96, 96)), "image/jpeg"))],
                      data={"candidates": "2"}, timeout=120).raise_for_status()
        deadline = time.monotonic() + 60
        while True:
            try:
                up = query("up")
                done = query('sum(revive_gateway_http_requests_total{route="/v1/restorations",code="200"})')
                generated = query('sum by (grpc_code) (grpc_server_handled_total{grpc_method="Generate"})')
                if len(up) == 4 and all(r["value"][1] == "1" for r in up) and done and generated:
                    break
            except (requests.ConnectionError, requests.JSONDecodeError):
                pass  # not listening yet, or answering 503 in plain text while its storage starts
            assert time.monotonic() < deadline, "Prometheus never saw the cluster"
            time.sleep(0.5)
        assert float(done[0]["value"][1]) >= 1
        assert {r["metric"]["grpc_code"] for r in generated} >= {"OK"}
        assert query("histogram_quantile(0.5, sum by (le) (rate(revive_gateway_stage_duration_seconds_bucket[1m])))") is not None
    finally:
        server.terminate()
        server.wait(30)
