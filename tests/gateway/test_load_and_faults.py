"""Fifty concurrent jobs over two replicas per service, one generator replica
killed mid-run: every job still finishes (bounded, loopback only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.cluster import GatewayThread, free_port, gateway_config, targets
from tests.gateway.test_jobs import submit, wait_for
from tests.photos import encode, portrait

ROOT = Path(__file__).resolve().parents[2]
JOBS = 50



def start_generator(port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'build' / 'gen'}", "REVIVE_LOG_LEVEL": "warning"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.generator", "--port", str(port), "--metrics-port", "-1", "--threads", "1"],
        cwd=ROOT, env=env,
    )


def wait_serving(port: int, timeout: float = 60) -> None:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"generator on {port} never became SERVING")


def test_fifty_jobs_survive_losing_a_generator_replica(detector, upscaler, tmp_path):
    ports = [free_port(), free_port()]
    generators = [start_generator(port) for port in ports]
    gateway = None
    try:
        for port in ports:
            wait_serving(port)
        generator_target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
        config = gateway_config(tmp_path, targets([detector]), generator_target, targets([upscaler]),
                                "--max-queued-jobs", "64", "--job-workers", "8")
        gateway = GatewayThread(config)
        photo = encode(portrait(256, 256, seed=8))
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda _i: submit(gateway.url, [photo], candidates=2), range(JOBS)))
        assert all(reply.status_code == 202 for reply in replies), {r.status_code for r in replies}
        jobs = [reply.json()["id"] for reply in replies]
        # Kill one replica once work is under way: its in-flight calls fail UNAVAILABLE and are retried on the other.
        deadline = time.monotonic() + 60
        while sum(requests.get(f"{gateway.url}/v1/jobs/{j}", timeout=10).json()["state"] == "done" for j in jobs[:10]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        generators[1].send_signal(signal.SIGKILL)
        finished = [wait_for(gateway.url, job, ("done", "failed", "cancelled"), timeout=300) for job in jobs]
        failures = [job for job in finished if job["state"] != "done"]
        assert not failures, failures[:2]
        assert all(len(job["photos"][0]["candidates"]) == 2 for job in finished)
    finally:
        if gateway is not None:
            gateway.stop()
        for process in generators:
            process.kill()
            process.wait(10)
