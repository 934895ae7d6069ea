"""Session-wide real servers: one of each service and a gateway in front of them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from services.common.server import ServiceServer
from services.detector.service import DEFINITION as DETECTOR
from services.generator.service import DEFINITION as GENERATOR
from services.upscaler.service import DEFINITION as UPSCALER
from tests.cluster import GatewayThread, gateway_config, start_service, targets


@pytest.fixture(scope="session")
def detector() -> Iterator[ServiceServer]:
    server = start_service(DETECTOR, "--engines", "classical")
    yield server
    server.stop(0)


@pytest.fixture(scope="session")
def generator() -> Iterator[ServiceServer]:
    server = start_service(GENERATOR, "--engines", "telea")
    yield server
    server.stop(0)


@pytest.fixture(scope="session")
def upscaler() -> Iterator[ServiceServer]:
    server = start_service(UPSCALER, "--engines", "lanczos")
    yield server
    server.stop(0)


@pytest.fixture(scope="session")
def gateway(detector: ServiceServer, generator: ServiceServer, upscaler: ServiceServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    results: Path = tmp_path_factory.mktemp("results")
    running = GatewayThread(gateway_config(results, targets([detector]), targets([generator]), targets([upscaler])))
    yield running
    running.stop()
