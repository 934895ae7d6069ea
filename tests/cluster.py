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
