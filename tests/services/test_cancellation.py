"""Cancelling a call stops the work itself, between tiles, not only the queue in front of it."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from revive.v1 import upscaler_pb2, upscaler_pb2_grpc

from services.common.imaging import to_proto
from services.upscaler.service import DEFINITION as UPSCALER
from tests.cluster import channel, start_service


def in_flight(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "grpc_server_in_flight_rpcs" and sample.labels.get("grpc_method") == "Upscale")


def test_a_cancelled_upscale_stops_within_a_tile():
    server = start_service(UPSCALER, "--engines", "fidelity", "--upscaler-tile", "64", "--upscaler-overlap", "16")
    try:
        stub = upscaler_pb2_grpc.UpscalerStub(channel(server.port))
        photo = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
        request = upscaler_pb2.UpscaleRequest(image=to_proto(photo), factor=4)
        start = time.monotonic()
        stub.Upscale(request, timeout=300)
        whole = time.monotonic() - start

        call = stub.Upscale.future(request, timeout=300)
        time.sleep(whole / 4)
        call.cancel()
        cancelled_at = time.monotonic()
        while in_flight(server.metrics_port) > 0:
            time.sleep(0.02)
        stopped_after = time.monotonic() - cancelled_at
        # The rest of the photo would have taken about 3/4 of `whole`; a tile is a small part of it.
        assert stopped_after < whole / 4, (stopped_after, whole)
    finally:
        server.stop(0)
