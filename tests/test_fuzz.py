"""Generated malformed input over HTTP and gRPC: never a 5xx or INTERNAL, no process dies, every service
still SERVING afterwards.

Cases are made, not listed: valid requests mutated by seeded random choices (bytes flipped, cut or
appended, fields removed or set to odd values, wrong types, sizes that lie, images whose header
disagrees with their data). Each run draws the same cases (fixed seeds), so a failure reproduces.
"""

from __future__ import annotations

import random

import grpc
import numpy as np
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from revive.v1 import common_pb2, detector_pb2, generator_pb2, upscaler_pb2

from services.common.imaging import PNG, RAW, to_proto
from tests.cluster import channel
from tests.photos import encode, portrait

HTTP_CASES = 120
GRPC_CASES = 120
FIELD_VALUES = ["", "-1", "0", "1e309", "nan", "99999999999999999999999", "auto", "ON", " 3 ", "\x00", "ü" * 300,
                "2.5", "true", "[]", "{}"]
FIELDS = ["candidates", "upscale", "age", "seed", "strength", "gender", "hair_color", "colorize"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A file damaged the ways uploads are: bytes flipped, cut short, padded, spliced."""
    data = bytearray(data)
    action = rng.choice(["flip", "cut", "pad", "splice", "header"])
    if action == "flip" and data:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif action == "cut":
        data = data[: rng.randrange(len(data) + 1)]
    elif action == "pad":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 500)))
    elif action == "splice" and len(data) > 10:
        start = rng.randrange(len(data) // 2)
        data = data[:start] + data[start + rng.randint(1, len(data) // 3):]
    elif action == "header":
        data[: rng.randint(1, 40)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    return bytes(data)


def http_case(rng: random.Random, photo: bytes) -> dict:
    """Keyword arguments of one requests.post to /v1/restorations or /v1/jobs."""
    kind = rng.choice(["file", "fields", "body", "headers"])
    files = [("photos", (rng.choice(["a.jpg", "", "../../etc/passwd", "ü.png", "x" * 300]),
                         mutate(photo, rng) if kind == "file" else photo, "image/jpeg"))]
    data = {rng.choice(FIELDS + ["colour", "x" * 50]): rng.choice(FIELD_VALUES) for _ in range(rng.randint(0, 5))}
    if kind == "fields":
        data = {rng.choice(FIELDS): rng.choice(FIELD_VALUES) for _ in range(rng.randint(1, 8))}
        data["candidates"] = "1"
    if kind == "body":
        body = mutate(b"--b\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n\r\n" + photo
                      + b"\r\n--b--\r\n", rng)
        return {"data": body, "headers": {"Content-Type": rng.choice(["multipart/form-data; boundary=b",
                                                                      "multipart/form-data", "image/jpeg",
                                                                      "multipart/form-data; boundary="])}}
    if kind == "headers":
        return {"files": files, "data": {"candidates": "1"},
                "headers": {"Content-Length": str(rng.randint(0, 10)), "Transfer-Encoding": "chunked"}
                if rng.random() < 0.3 else {"Content-Type": "multipart/mixed"}}
    data.setdefault("candidates", "1")
    return {"files": files, "data": data}


@pytest.fixture(scope="module")
def small_photo() -> bytes:
    return encode(portrait(48, 40, seed=1), quality=80)


def test_http_never_answers_5xx(gateway, small_photo):
    rng = random.Random(20261127)
    statuses = []
    for number in range(HTTP_CASES):
        case = http_case(rng, small_photo)
        path = rng.choice(["/v1/restorations", "/v1/jobs"])
        try:
            reply = requests.post(gateway.url + path, timeout=120, **case)
        except requests.ConnectionError:
            continue  # a body the client itself could not send (a lying Content-Length): nothing to judge
        statuses.append(reply.status_code)
        # 503 is allowed only as a photo's upstream verdict, never for the request's own malformation.
        assert reply.status_code < 500 or reply.status_code == 503, (number, case.get("data"), reply.text[:300])
    assert len(statuses) >= HTTP_CASES * 0.9 and any(400 <= status < 500 for status in statuses)
    assert requests.get(f"{gateway.url}/healthz", timeout=10).status_code == 200


def image_message(rng: random.Random) -> common_pb2.Image:
    """An Image that lies in one way or another, or an honest one."""
    height, width = rng.choice([(1, 1), (16, 16), (5, 300), (40, 30)])
    pixels = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = to_proto(pixels, rng.choice([RAW, PNG]))
    lie = rng.choice(["none", "width", "height", "channels", "data", "encoding", "huge"])
    if lie == "width":
        image.width = rng.choice([0, width + 1, 5000, 2**31])
    elif lie == "height":
        image.height = rng.choice([0, height - 1 if height > 1 else 7, 99999])
    elif lie == "channels":
        image.channels = rng.choice([0, 2, 4, 255])
    elif lie == "data":
        image.data = mutate(image.data, rng)
    elif lie == "encoding":
        image.encoding = rng.choice([7, -1 & 0x7FFFFFFF])
    elif lie == "huge":
        image.width = image.height = 16384
    return image


def grpc_case(rng: random.Random) -> tuple[str, bytes]:
    """(method path, serialised request): odd fields, or bytes that are no message at all."""
    service = rng.choice(["detector", "generator", "upscaler"])
    if service == "detector":
        request = detector_pb2.DetectRequest(image=image_message(rng), engine=rng.choice(["", "classical", "nope"]))
        path = "/revive.v1.DamageDetector/Detect"
    elif service == "generator":
        report = common_pb2.DamageReport(masks=[common_pb2.DamageMask(type=rng.randrange(6), mask=image_message(rng))]
                                         if rng.random() < 0.5 else [])
        options = common_pb2.RestoreOptions(candidates=rng.choice([0, 1, 9]), gender=rng.choice([0, 1, 7]),
                                            strength=rng.choice([0.5, -1.0, float("nan")]))
        request = generator_pb2.GenerateRequest(image=image_message(rng), damage=report, options=options,
                                                seeds=rng.choice([[], [1], list(range(40))]),
                                                engine=rng.choice(["", "telea", "nope"]))
        path = "/revive.v1.Generator/Generate"
    else:
        request = upscaler_pb2.UpscaleRequest(image=image_message(rng), factor=rng.choice([0, 1, 2, 3, 4, 8]),
                                              engine=rng.choice(["", "lanczos", "nope"]))
        path = "/revive.v1.Upscaler/Upscale"
    data = request.SerializeToString()
    return path, mutate(data, rng) if rng.random() < 0.25 else data


def test_grpc_never_answers_internal_and_every_service_stays_serving(detector, generator, upscaler):
    ports = {"DamageDetector": detector.port, "Generator": generator.port, "Upscaler": upscaler.port}
    rng = random.Random(1127)
    codes = []
    for number in range(GRPC_CASES):
        path, data = grpc_case(rng)
        port = ports[path.split("/")[1].split(".")[-1]]
        raw = channel(port)
        try:
            if path.endswith("Generate"):
                list(raw.unary_stream(path, lambda b: b, lambda b: b)(data, timeout=60))
            else:
                raw.unary_unary(path, lambda b: b, lambda b: b)(data, timeout=60)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
            assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (number, path,
                                                                                          error.details())
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) >= GRPC_CASES // 3
    for port in ports.values():
        status = health_pb2_grpc.HealthStub(channel(port)).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
