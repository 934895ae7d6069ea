"""A photo's candidates upscaled in one UpscaleSet call, and one by one from an upscaler that predates it."""

from __future__ import annotations

import dataclasses
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from revive.v1 import upscaler_pb2_grpc

from services.upscaler.service import DEFINITION as UPSCALER
from services.upscaler.service import UpscalerServicer
from tests.cluster import GatewayThread, gateway_config, start_service, targets
from tests.gateway.test_http_api import fetch_image, restore
from tests.photos import encode, portrait, scratched


def handled(metrics_port: int, method: str) -> float:
    """RPCs of `method` answered, from a server's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "grpc_server_handled_total" and sample.labels.get("grpc_method") == method)


def upscaled_candidates(url: str) -> list:
    damaged, _ = scratched(portrait(160, 200), count=3)
    reply = restore(url, [("p.jpg", encode(damaged))], candidates=3, upscale=2)
    assert reply.status_code == 200, reply.text
    candidates = reply.json()["photos"][0]["candidates"]
    assert len(candidates) == 3
    return [fetch_image(url, candidate["url"]) for candidate in candidates]


def test_a_photos_candidates_are_upscaled_in_one_call(gateway, upscaler):
    sets, singles = handled(upscaler.metrics_port, "UpscaleSet"), handled(upscaler.metrics_port, "Upscale")
    images = upscaled_candidates(gateway.url)
    assert all(image.shape == (400, 320, 3) for image in images)
    assert handled(upscaler.metrics_port, "UpscaleSet") == sets + 1
    assert handled(upscaler.metrics_port, "Upscale") == singles


class WithoutUpscaleSet(UpscalerServicer):
    """An upscaler replica from before UpscaleSet: the method answers UNIMPLEMENTED."""

    UpscaleSet = upscaler_pb2_grpc.UpscalerServicer.UpscaleSet


def test_an_upscaler_without_upscale_set_still_upscales_every_candidate(detector, generator, tmp_path):
    older = dataclasses.replace(UPSCALER, add_servicer=lambda server, engines: (
        upscaler_pb2_grpc.add_UpscalerServicer_to_server(WithoutUpscaleSet(engines), server)))
    server = start_service(older, "--engines", "lanczos")
    running = GatewayThread(gateway_config(tmp_path, targets([detector]), targets([generator]), targets([server])))
    try:
        # The metrics registry is the test process's, shared by every server started in it: count the change.
        singles = handled(server.metrics_port, "Upscale")
        images = upscaled_candidates(running.url)
        assert all(image.shape == (400, 320, 3) for image in images)
        assert handled(server.metrics_port, "Upscale") == singles + 3
    finally:
        running.stop()
        server.stop(0)
