"""Mutual TLS inside: a service with a CA serves only clients holding a certificate that CA signed, and
the gateway, holding one, restores photos through it."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from revive.v1 import detector_pb2, detector_pb2_grpc

from deploy.local.tls import make_local_tls
from services.common.imaging import to_proto
from services.common.tls import channel_credentials
from services.detector.service import DEFINITION as DETECTOR
from services.generator.service import DEFINITION as GENERATOR
from services.upscaler.service import DEFINITION as UPSCALER
from tests.cluster import GatewayThread, gateway_config, start_service
from tests.gateway.test_http_api import restore
from tests.photos import encode, portrait


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_local_tls(tmp_path_factory.mktemp("tls"))


def detect(port: int, credentials: grpc.ChannelCredentials | None) -> int:
    target = f"localhost:{port}"
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    request = detector_pb2.DetectRequest(image=to_proto(np.full((32, 32, 3), 128, np.uint8)))
    return len(detector_pb2_grpc.DamageDetectorStub(channel).Detect(request, timeout=10).report.masks)


def test_a_client_without_a_certificate_is_refused(tls):
    server = start_service(DETECTOR, "--engines", "classical", *tls.service_flags())
    try:
        with pytest.raises(grpc.RpcError) as plaintext:
            detect(server.port, None)
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as no_certificate:
            detect(server.port, channel_credentials(str(tls.ca), "", ""))
        assert no_certificate.value.code() == grpc.StatusCode.UNAVAILABLE
        assert detect(server.port, channel_credentials(str(tls.ca), str(tls.client_cert), str(tls.client_key))) == 4
        # Health too: only holders of a certificate get an answer at all.
        channel = grpc.secure_channel(f"localhost:{server.port}",
                                      channel_credentials(str(tls.ca), str(tls.client_cert), str(tls.client_key)))
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)


def test_the_gateway_restores_over_mutual_tls(tls, tmp_path):
    servers = [start_service(definition, "--engines", engine, *tls.service_flags())
               for definition, engine in ((DETECTOR, "classical"), (GENERATOR, "telea"), (UPSCALER, "lanczos"))]
    gateway = GatewayThread(gateway_config(tmp_path, *(f"127.0.0.1:{server.port}" for server in servers),
                                           *tls.gateway_flags()))
    try:
        reply = restore(gateway.url, [("p.jpg", encode(portrait(96, 120)))], candidates=2, upscale=2)
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["photos"][0]["candidates"]) == 2
    finally:
        gateway.stop()
        for server in servers:
            server.stop(0)


def test_probes_over_the_metrics_port_answer_without_a_certificate(tls):
    import urllib.request

    server = start_service(DETECTOR, "--engines", "classical", *tls.service_flags())
    try:
        for path in ("/healthz", "/readyz"):
            reply = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=5)
            assert reply.status == 200, path
        assert b"grpc_server_started_total" in urllib.request.urlopen(
            f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read()
        server.stop(0)
        with pytest.raises(urllib.error.HTTPError) as draining:
            urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/readyz", timeout=5)
        assert draining.value.code == 503
    finally:
        server.stop(0)
