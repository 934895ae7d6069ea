"""What every service gets from the shared bootstrap: health, reflection, metrics, limits, drain."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from revive.v1 import detector_pb2, detector_pb2_grpc

from services.common.imaging import to_proto
from services.common.server import ServiceDefinition, ServiceServer
from services.detector.engines.classical import ClassicalDetector
from services.detector.service import DEFINITION as DETECTOR
from tests.cluster import channel


class GatedDetector:
    """The classical detector, but loading and detecting wait for the test to say go."""

    name, provider = "gated", "test"

    def __init__(self, loaded: threading.Event, release: threading.Event) -> None:
        self._inner, self._loaded, self._release = ClassicalDetector(), loaded, release

    def warm_up(self) -> None:
        assert self._loaded.wait(30)

    def detect(self, rgb, analyze_faces=False):
        assert self._release.wait(30)
        return self._inner.detect(rgb)


def gated_definition(loaded: threading.Event, release: threading.Event) -> ServiceDefinition:
    return ServiceDefinition(
        name="detector",
        grpc_service=DETECTOR.grpc_service,
        default_port=0,
        default_metrics_port=-1,
        engines={"gated": lambda _config: GatedDetector(loaded, release)},
        add_servicer=DETECTOR.add_servicer,
    )


def health_status(port: int, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel(port))
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_turns_serving_only_after_the_engines_load():
    loaded, release = threading.Event(), threading.Event()
    release.set()
    definition = gated_definition(loaded, release)
    server = ServiceServer(definition, definition.parse(["--port", "0", "--metrics-port", "-1"])).start()
    try:
        assert health_status(server.port) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert health_status(server.port, DETECTOR.grpc_service) == health_pb2.HealthCheckResponse.NOT_SERVING
        stub = detector_pb2_grpc.DamageDetectorStub(channel(server.port))
        with pytest.raises(grpc.RpcError) as error:
            stub.Detect(detector_pb2.DetectRequest(image=to_proto(np.zeros((8, 8, 3), np.uint8))))
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        loaded.set()
        server.wait_until_serving(10)
        assert health_status(server.port) == health_pb2.HealthCheckResponse.SERVING
        assert health_status(server.port, DETECTOR.grpc_service) == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)


def test_graceful_drain_finishes_in_flight_work_and_refuses_new():
    loaded, release = threading.Event(), threading.Event()
    loaded.set()
    definition = gated_definition(loaded, release)
    server = ServiceServer(definition, definition.parse(["--port", "0", "--metrics-port", "-1"])).start()
    server.wait_until_serving(10)
    stub = detector_pb2_grpc.DamageDetectorStub(channel(server.port))
    in_flight = stub.Detect.future(detector_pb2.DetectRequest(image=to_proto(np.zeros((16, 16, 3), np.uint8))))
    time.sleep(0.3)
    stopper = threading.Thread(target=server.stop, args=(10,))
    stopper.start()
    time.sleep(0.3)
    release.set()
    assert in_flight.result(10).report.engine == "gated"
    stopper.join(10)
    with pytest.raises(grpc.RpcError):
        stub.Detect(detector_pb2.DetectRequest(image=to_proto(np.zeros((8, 8, 3), np.uint8))), timeout=2)


def test_saturated_service_sheds_load_with_resource_exhausted():
    loaded, release = threading.Event(), threading.Event()
    loaded.set()
    definition = gated_definition(loaded, release)
    flags = ["--port", "0", "--metrics-port", "-1", "--max-concurrency", "1", "--max-queue", "1"]
    server = ServiceServer(definition, definition.parse(flags)).start()
    server.wait_until_serving(10)
    stub = detector_pb2_grpc.DamageDetectorStub(channel(server.port))
    request = detector_pb2.DetectRequest(image=to_proto(np.zeros((16, 16, 3), np.uint8)))
    try:
        running, queued = stub.Detect.future(request), None
        time.sleep(0.3)
        queued = stub.Detect.future(request)
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as error:
            stub.Detect(request, timeout=5)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Health still answers while the inference slots are full.
        assert health_status(server.port) == health_pb2.HealthCheckResponse.SERVING
        release.set()
        assert running.result(10) and queued.result(10)
    finally:
        release.set()
        server.stop(0)


def test_reflection_lists_the_service(detector):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel(detector.port))
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {service.name for reply in replies for service in reply.list_services_response.service}
    assert {"revive.v1.DamageDetector", "grpc.health.v1.Health"} <= names


def test_metrics_endpoint_counts_rpcs_by_code_and_times_inference(detector):
    stub = detector_pb2_grpc.DamageDetectorStub(channel(detector.port))
    stub.Detect(detector_pb2.DetectRequest(image=to_proto(np.full((32, 32, 3), 90, np.uint8))))
    with pytest.raises(grpc.RpcError):
        stub.Detect(detector_pb2.DetectRequest(image=to_proto(np.zeros((8, 8, 3), np.uint8)), engine="missing"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{detector.metrics_port}/metrics", timeout=5).read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    service = {"grpc_service": "revive.v1.DamageDetector", "grpc_method": "Detect"}
    assert value("grpc_server_handled_total", grpc_code="OK", **service) >= 1
    assert value("grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **service) >= 1
    assert value("grpc_server_handling_seconds_count", **service) >= 2
    assert value("revive_model_inference_seconds_count", model="classical", provider="opencv") >= 1
    assert ("grpc_server_in_flight_rpcs", tuple(sorted(service.items()))) in samples
