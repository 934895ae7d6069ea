"""Every shape works through every engine of every service: 1xN up to 4096x1, 1x1, thin strips.

Real servers with all their engines on loopback; a shape that an engine
cannot take must come back as INVALID_ARGUMENT with a reason, never INTERNAL.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest
from revive.v1 import (
    common_pb2,
    detector_pb2,
    detector_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    upscaler_pb2,
    upscaler_pb2_grpc,
)

from services.common.imaging import MAX_SIDE, from_proto, to_proto
from services.common.server import ServiceServer
from services.detector.service import DEFINITION as DETECTOR
from services.generator.service import DEFINITION as GENERATOR
from services.upscaler.service import DEFINITION as UPSCALER
from tests.cluster import channel, start_service
from tests.gateway.test_http_api import restore
from tests.photos import encode

SHAPES = [(1, 1), (1, 1000), (1000, 1), (4096, 1), (1, 4096), (3, 4096), (4096, 3), (16, 16), (17, 33)]


def pixels(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * 7919 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ServiceServer]]:
    started = {"detector": start_service(DETECTOR, "--engines", "classical,unet"),
               "generator": start_service(GENERATOR, "--engines", "learned,telea"),
               "upscaler": start_service(UPSCALER, "--engines", "fidelity,lanczos,realesrgan")}
    yield started
    for server in started.values():
        server.stop(0)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_engine_takes_every_shape(servers, shape):
    height, width = shape
    image = to_proto(pixels(height, width))
    detect = detector_pb2_grpc.DamageDetectorStub(channel(servers["detector"].port)).Detect
    generate = generator_pb2_grpc.GeneratorStub(channel(servers["generator"].port)).Generate
    upscale = upscaler_pb2_grpc.UpscalerStub(channel(servers["upscaler"].port)).Upscale
    for engine in ("classical", "unet"):
        report = detect(detector_pb2.DetectRequest(image=image, engine=engine, analyze_faces=True), timeout=120).report
        assert all(from_proto(mask.mask).shape == (height, width) for mask in report.masks), engine
    for engine in ("learned", "telea"):
        request = generator_pb2.GenerateRequest(
            image=image, damage=report, engine=engine, seeds=[1],
            options=common_pb2.RestoreOptions(colorize=common_pb2.COLORIZE_ON))
        (candidate,) = list(generate(request, timeout=120))
        assert from_proto(candidate.image).shape == (height, width, 3), engine
    if max(height, width) * 2 <= MAX_SIDE:
        for engine in ("fidelity", "lanczos", "realesrgan"):
            reply = upscale(upscaler_pb2.UpscaleRequest(image=image, factor=2, engine=engine), timeout=120)
            assert from_proto(reply.image).shape == (2 * height, 2 * width, 3), engine


@pytest.mark.parametrize("shape", [(4096, 1), (1, 1000), (16, 16)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_gateway_restores_extreme_shapes(gateway, shape):
    reply = restore(gateway.url, [("strip.png", encode(pixels(*shape), "PNG"))], candidates=1, upscale=2)
    assert reply.status_code == 200, reply.text
    photo = reply.json()["photos"][0]
    assert photo["status"] == "done" and len(photo["candidates"]) == 1
