"""The gateway's gRPC Restoration API: streamed progress, damage, candidates, failures."""

from __future__ import annotations

import grpc
import pytest
from revive.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

from services.common.imaging import decode_png
from tests.cluster import channel
from tests.photos import encode, portrait, scratched


def restoration(gateway) -> gateway_pb2_grpc.RestorationStub:
    return gateway_pb2_grpc.RestorationStub(channel(gateway.gateway.grpc_port))


def test_restore_streams_progress_then_candidates_then_done(gateway):
    damaged, _ = scratched(portrait(), count=3)
    request = gateway_pb2.RestoreRequest(
        photos=[gateway_pb2.Photo(filename="a.jpg", content=encode(damaged)), gateway_pb2.Photo(filename="b.txt", content=b"??")],
        options=common_pb2.RestoreOptions(candidates=2, seed=5),
    )
    events = list(restoration(gateway).Restore(request, timeout=300))
    by_photo = {index: [e for e in events if e.photo_index == index] for index in (0, 1)}
    kinds = [e.WhichOneof("event") for e in by_photo[0]]
    assert kinds[0] == "progress" and kinds[-1] == "done"
    assert kinds.index("damage") < kinds.index("candidate")
    candidates = [e.candidate for e in by_photo[0] if e.WhichOneof("event") == "candidate"]
    seeds = [c.seed for c in candidates]
    # Two of the seeds drawn from 5 on (the surplus among them): the best two by rank.
    assert len(set(seeds)) == 2 and all(5 <= seed < 10 for seed in seeds)
    assert all(decode_png(c.image.data).shape == (600, 480, 3) for c in candidates)
    done = by_photo[0][-1].done
    assert sorted(done.ranking) == sorted(seeds) and done.upscale == 1
    failed = [e.failed for e in by_photo[1] if e.WhichOneof("event") == "failed"]
    assert failed and failed[0].code == "INVALID_ARGUMENT" and "not an image" in failed[0].message


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (gateway_pb2.RestoreRequest(), "photos"),
        (gateway_pb2.RestoreRequest(photos=[gateway_pb2.Photo(content=b"x")] * 11), "photos"),
        (gateway_pb2.RestoreRequest(photos=[gateway_pb2.Photo(content=b"x")], options=common_pb2.RestoreOptions(candidates=0)), "candidates"),
        (gateway_pb2.RestoreRequest(photos=[gateway_pb2.Photo(content=b"x")], options=common_pb2.RestoreOptions(upscale=3)), "upscale"),
    ],
    ids=["no-photos", "eleven-photos", "zero-candidates", "upscale-3"],
)
def test_restore_rejects_bad_requests(gateway, request_, message):
    with pytest.raises(grpc.RpcError) as error:
        list(restoration(gateway).Restore(request_, timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_the_grpc_api_has_health_reflection_and_metrics(gateway):
    import urllib.request

    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    from prometheus_client.parser import text_string_to_metric_families


    grpc_channel = channel(gateway.gateway.grpc_port)
    status = health_pb2_grpc.HealthStub(grpc_channel).Check(
        health_pb2.HealthCheckRequest(service="revive.v1.Restoration"), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    answers = reflection_pb2_grpc.ServerReflectionStub(grpc_channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {service.name for answer in answers for service in answer.list_services_response.service}
    assert "revive.v1.Restoration" in names
    stub = gateway_pb2_grpc.RestorationStub(grpc_channel)
    list(stub.Restore(gateway_pb2.RestoreRequest(photos=[gateway_pb2.Photo(filename="p.jpg",
                                                                          content=encode(portrait(64, 64)))]),
                      timeout=120))
    text = urllib.request.urlopen(f"{gateway.url}/metrics", timeout=10).read().decode()
    handled_ok = [sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                  if sample.name == "grpc_server_handled_total" and sample.labels["grpc_method"] == "Restore"
                  and sample.labels["grpc_code"] == "OK"]
    assert handled_ok and handled_ok[0] >= 1
