"""`make run` / `make cluster` as a user runs them: real processes, real ports, Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.photos import encode, portrait

ROOT = Path(__file__).resolve().parents[1]


def generate_calls(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_handled_total" and sample.labels.get("grpc_method") == "Generate"
    )


def ephemeral_ports() -> range:
    """The kernel's range for outgoing sockets: a client socket of any other test may hold one of these."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def port_offset_outside(ports: range) -> int:
    """An offset that puts every replica's gRPC and metrics port outside `ports` (50051+ lies inside by default)."""
    candidates = [
        offset for offset in range(0, 65536 - 50053, 100)
        if all(
            1024 < base + offset + stride < 65536 and base + offset + stride not in ports
            for base in (50051, 50052, 50053, 9101, 9102, 9103) for stride in (0, 10)
        )
    ]
    return random.choice(candidates)


def test_cluster_with_two_replicas_serves_balances_and_stops_cleanly(tmp_path):
    offset = port_offset_outside(ephemeral_ports())
    http_port, grpc_port = 18080 + offset // 100, 19050 + offset // 100
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'build' / 'gen'}"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.launch", "--replicas", "2", "--port-offset", str(offset),
         "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--results-dir", str(tmp_path),
         "--upscaler-engines", "lanczos"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        ready = json.loads(launcher.stdout.readline())
        assert ready["msg"] == "Revive is ready" and ready["replicas"] == 2
        url = ready["url"].rstrip("/")
        files = [("photos", ("p.jpg", encode(portrait(160, 200)), "image/jpeg"))]
        reply = requests.post(f"{url}/v1/restorations", files=files, data={"candidates": "6"}, timeout=300)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["photos"][0]["candidates"]) == 6
        # The gateway spread the six one-seed calls over both generator replicas.
        per_replica = [generate_calls(9102 + offset + 10 * replica) for replica in (0, 1)]
        assert all(calls >= 2 for calls in per_replica), per_replica
        # --upscaler-engines reached the upscalers: no learned model was loaded there.
        upscaler_metrics = urllib.request.urlopen(f"http://127.0.0.1:{9103 + offset}/metrics", timeout=5).read()
        assert b"revive_model_loaded_info{" not in upscaler_metrics
    finally:
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(60) == 0
    time.sleep(0.5)
    # Every process it started is gone: nothing answers on the gateway port any more.
    try:
        requests.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2)
        raise AssertionError("the gateway still answers after Ctrl-C")
    except requests.ConnectionError:
        pass
