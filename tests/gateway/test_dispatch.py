"""The gateway never overfills a replica, and a full or lost replica costs time, never a photo.

Real servers on loopback: a generator admitting one inference and one waiting
call, ten photos of eight candidates each in one request; and two gateways
sharing that generator, so it does fill up and answers RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.dispatch import resolve
from services.common.server import ServiceServer
from services.generator.service import DEFINITION as GENERATOR
from tests.cluster import GatewayThread, gateway_config, start_service, targets
from tests.gateway.test_http_api import restore
from tests.photos import encode, portrait


def handled(server: ServiceServer, code: str) -> float:
    """Generate calls the server finished with `code`, from a real scrape of its /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "grpc_server_handled_total" and sample.labels.get("grpc_method") == "Generate"
               and sample.labels.get("grpc_code") == code)


@pytest.fixture
def small_generator():
    """One inference at a time and one call waiting: anything beyond is refused."""
    server = start_service(GENERATOR, "--engines", "telea", "--max-concurrency", "1", "--max-queue", "1")
    yield server
    server.stop(0)


def photos(count: int, width: int = 96, height: int = 80) -> list[tuple[str, bytes]]:
    return [(f"p{index}.jpg", encode(portrait(width, height, seed=index))) for index in range(count)]


def test_ten_photos_of_eight_candidates_on_one_small_replica_all_finish(detector, upscaler, small_generator, tmp_path):
    gateway = GatewayThread(gateway_config(tmp_path, targets([detector]), targets([small_generator]),
                                           targets([upscaler]), "--max-photos-in-flight", "10"))
    try:
        reply = restore(gateway.url, photos(10), candidates=8, upscale=2, seed=1)
        assert reply.status_code == 200, reply.text
        assert [photo["status"] for photo in reply.json()["photos"]] == ["done"] * 10
        assert all(len(photo["candidates"]) == 8 for photo in reply.json()["photos"])
        # The gateway kept the work in its own queue: the replica never had to refuse a call.
        assert handled(small_generator, "RESOURCE_EXHAUSTED") == 0
        assert handled(small_generator, "OK") >= 80
    finally:
        gateway.stop()


def test_two_gateways_filling_one_replica_lose_no_photo(detector, upscaler, small_generator, tmp_path):
    gateways = [GatewayThread(gateway_config(tmp_path / str(index), targets([detector]), targets([small_generator]),
                                             targets([upscaler]), "--max-photos-in-flight", "6"))
                for index in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            # Photos large enough that a call lasts (the replica keeps a photo's preparation between its calls,
            # and tiny ones came and went too fast for the two gateways to overlap every time).
            replies = list(pool.map(lambda gateway: restore(gateway.url, photos(6, 480, 400), candidates=4, seed=3),
                                    gateways))
        for reply in replies:
            assert reply.status_code == 200, reply.text
            assert [len(photo["candidates"]) for photo in reply.json()["photos"]] == [4] * 6
        # Each gateway alone fits the replica, together they overfill it: refusals happened and were absorbed.
        assert handled(small_generator, "RESOURCE_EXHAUSTED") > 0
    finally:
        for gateway in gateways:
            gateway.stop()


def test_targets_resolve_to_one_address_per_replica():
    assert resolve("ipv4:127.0.0.1:1,127.0.0.1:2") == ["127.0.0.1:1", "127.0.0.1:2"]
    assert resolve("localhost:50052") == ["127.0.0.1:50052"]  # not also [::1]: one server, counted once
    assert resolve("dns:///127.0.0.1:7") == ["127.0.0.1:7"]
