"""Running real Revive servers inside the test process, on free loopback ports."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Sequence

import grpc

from gateway.app import Gateway
from gateway.config import GatewayConfig, parse_config
from services.common.server import ServiceDefinition, ServiceServer, message_size_options

MAX_MESSAGE = 256 * 1024 * 1024


def free_port() -> int:
    """A loopback port nobody listens on (for a dead upstream, or a server started later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(definition: ServiceDefinition, *flags: str) -> ServiceServer:
    """A real gRPC server for `definition` on 127.0.0.1:<free port>, SERVING."""
    config = definition.parse(["--port", "0", "--metrics-port", "0", "--threads", "1", *flags])
    server = ServiceServer(definition, config).start()
    server.wait_until_serving(120)
    return server


def channel(port: int) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=message_size_options(MAX_MESSAGE))


def gateway_config(results_dir: Path, detector: str, generator: str, upscaler: str, *flags: str) -> GatewayConfig:
    return parse_config([
        "--http-port", "0", "--grpc-port", "0", "--results-dir", str(results_dir),
        "--detector", detector, "--generator", generator, "--upscaler", upscaler,
        "--rpc-timeout", "120", *flags,
    ])


class GatewayThread:
    """The asyncio gateway on its own loop in a thread, so sync tests can call it."""

    def __init__(self, config: GatewayConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.gateway: Gateway = asyncio.run_coroutine_threadsafe(Gateway(config).start(), self._loop).result(30)
        self.url = f"http://127.0.0.1:{self.gateway.http_port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.stop(1), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def targets(servers: Sequence[ServiceServer]) -> str:
    """An ipv4: target listing every server, as the launcher builds it."""
    return "ipv4:" + ",".join(f"127.0.0.1:{server.port}" for server in servers)


class GatewayProcess:
    """`python -m gateway` as its own process, as a replica runs: it can be killed with SIGKILL."""

    def __init__(self, results_dir: Path, detector: str, generator: str, upscaler: str, *flags: str,
                 env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys

        root = Path(__file__).resolve().parents[1]
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        command = [sys.executable, "-m", "gateway", "--http-port", str(self.http_port),
                   "--grpc-port", str(free_port()), "--results-dir", str(results_dir), "--detector", detector,
                   "--generator", generator, "--upscaler", upscaler, "--log-level", "warning", *flags]
        environment = {**os.environ, "PYTHONPATH": f"{root}:{root / 'build' / 'gen'}", **(env or {})}
        self.process = subprocess.Popen(command, cwd=root, env=environment)
        self._wait_ready(60)

    def _wait_ready(self, within: float) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + within
        while True:
            assert self.process.poll() is None, f"the gateway exited with {self.process.returncode}"
            try:
                urllib.request.urlopen(f"{self.url}/readyz", timeout=2)
                return
            except OSError:
                assert time.monotonic() < deadline, "the gateway never became ready"
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, its leases are left to run out."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
