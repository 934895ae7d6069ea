"""The generator keeps a photo's preparation between calls: the gateway sends one seed per call, and every
candidate of a photo needs the same filled damage, faces and regions."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from revive.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.imaging import from_proto, to_proto
from services.common.server import ServiceServer
from services.generator.engine import RestorationInput
from services.generator.photo_cache import PhotoCache
from services.generator.service import DEFINITION
from tests.cluster import channel, start_service

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


def photo_of(side: int, value: int = 0) -> RestorationInput:
    return RestorationInput(np.full((side, side, 3), value, np.uint8), {}, common_pb2.DamageReport(),
                            common_pb2.RestoreOptions())


def unexpected() -> RestorationInput:
    raise AssertionError("built again, though it was kept")


def test_the_least_recently_used_photo_goes_first_and_the_one_asked_for_always_stays():
    first, second, third = photo_of(100, 1), photo_of(100, 2), photo_of(100, 3)  # 30 000 bytes each
    cache = PhotoCache(budget_bytes=70_000)
    assert cache.get(b"first", lambda: first) is first
    assert cache.get(b"second", lambda: second) is second
    assert cache.get(b"first", unexpected) is first  # now the most recently used
    assert cache.get(b"third", lambda: third) is third  # 90 000 bytes: the second goes
    assert len(cache) == 2
    assert cache.get(b"first", unexpected) is first
    rebuilt = photo_of(100, 2)
    assert cache.get(b"second", lambda: rebuilt) is rebuilt
    large = photo_of(200)  # 120 000 bytes, alone over the budget: kept while it is asked for
    assert cache.get(b"large", lambda: large) is large and len(cache) == 1
    assert cache.get(b"large", unexpected) is large


def test_a_photos_analyses_count_against_the_budget_and_a_zero_budget_keeps_nothing():
    photo = photo_of(100)
    photo.once("person", lambda: np.zeros((100, 100, 3), np.uint8))
    labels = np.zeros((50, 50), np.uint8)
    photo.once("labels", lambda: [labels, np.zeros((50, 50), np.uint8)])
    photo.once("again", lambda: labels)  # one array is counted once
    assert photo.nbytes() == 65_000
    cache = PhotoCache(budget_bytes=50_000)
    cache.get(b"analysed", lambda: photo)
    cache.get(b"plain", lambda: photo_of(100, 5))  # 95 000 bytes in all: the analysed photo goes
    assert len(cache) == 1
    nothing = PhotoCache(budget_bytes=0)
    nothing.get(b"plain", lambda: photo_of(10))
    assert len(nothing) == 0


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    running = start_service(DEFINITION, "--engines", "learned")
    yield running
    running.stop(0)


def cache_counts(metrics_port: int) -> dict[str, float]:
    """revive_generator_photo_cache_total by result, and the learned engine's bytes held, scraped from the
    service's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    counts = {"hit": 0.0, "miss": 0.0, "bytes": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "revive_generator_photo_cache_total":
                counts[sample.labels["result"]] = sample.value
            if sample.name == "revive_generator_photo_cache_bytes" and sample.labels["engine"] == "learned":
                counts["bytes"] = sample.value
    return counts


def generate(server: ServiceServer, photo: np.ndarray, seeds: list[int], **options: object) -> list[np.ndarray]:
    request = generator_pb2.GenerateRequest(
        image=to_proto(photo), damage=common_pb2.DamageReport(is_grayscale=True), seeds=seeds,
        options=common_pb2.RestoreOptions(colorize=common_pb2.COLORIZE_ON, **options))
    stub = generator_pb2_grpc.GeneratorStub(channel(server.port))
    return [from_proto(candidate.image) for candidate in stub.Generate(request, timeout=120)]


def test_one_seed_per_call_prepares_the_photo_once_and_gives_the_same_candidates(server):
    colour = cv2.cvtColor(cv2.imread(str(FACES / "sample6.jpg")), cv2.COLOR_BGR2RGB)
    grey = np.repeat(cv2.cvtColor(cv2.resize(colour, (320, 240), interpolation=cv2.INTER_AREA),
                                  cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    before = cache_counts(server.metrics_port)
    (first,) = generate(server, grey, [1])
    (second,) = generate(server, grey, [2])
    both = generate(server, grey, [1, 2])
    after = cache_counts(server.metrics_port)
    assert after["miss"] - before["miss"] == 1 and after["hit"] - before["hit"] == 2
    assert after["bytes"] > grey.nbytes  # the photo and what was worked out for it
    # Prepared anew (the first call) or kept (the last), a seed gives the same candidate.
    assert np.array_equal(first, both[0]) and np.array_equal(second, both[1])
    assert not np.array_equal(first, second)
    # Other options are another photo to the cache: nothing of the first is reused for them.
    generate(server, grey, [1], hair_color=common_pb2.RED)
    assert cache_counts(server.metrics_port)["miss"] - after["miss"] == 1
