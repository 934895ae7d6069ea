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
from tests.postgres import PostgresServer, postgres_server


def serve(definition, engine: str) -> Iterator[ServiceServer]:
    """One service with its classical engine: the baselines keep these tests independent of trained models."""
    server = start_service(definition, "--engines", engine)
    yield server
    server.stop(0)


@pytest.fixture(scope="session")
def detector() -> Iterator[ServiceServer]:
    yield from serve(DETECTOR, "classical")


@pytest.fixture(scope="session")
def generator() -> Iterator[ServiceServer]:
    yield from serve(GENERATOR, "telea")


@pytest.fixture(scope="session")
def upscaler() -> Iterator[ServiceServer]:
    yield from serve(UPSCALER, "lanczos")


@pytest.fixture(scope="session")
def gateway(detector: ServiceServer, generator: ServiceServer, upscaler: ServiceServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    results: Path = tmp_path_factory.mktemp("results")
    running = GatewayThread(gateway_config(results, targets([detector]), targets([generator]), targets([upscaler])))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; tests take a fresh database each (new_database())."""
    yield from postgres_server()
