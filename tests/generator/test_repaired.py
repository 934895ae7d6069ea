"""Every candidate says what its fill replaced, per kind of damage: the masks the user is shown as repaired."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from revive.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.imaging import from_proto, to_proto
from services.common.server import ServiceServer
from services.generator.repaired import REACH, by_type
from services.generator.service import DEFINITION
from tests.cluster import channel, start_service
from tests.photos import portrait


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    running = start_service(DEFINITION, "--engines", "learned,telea")
    yield running
    running.stop(0)


def damaged_photo() -> tuple[np.ndarray, dict[int, np.ndarray]]:
    photo = portrait(320, 400)
    scratch, tear = np.zeros(photo.shape[:2], np.uint8), np.zeros(photo.shape[:2], np.uint8)
    cv2.line(scratch, (20, 60), (300, 340), 255, 2)
    tear[:60, 250:] = 255
    damaged = photo.copy()
    damaged[scratch > 0] = 235
    # The crack's paler rim, a pixel beyond the mask the detector gave: the fill takes it in.
    rim = (cv2.dilate(scratch, np.ones((5, 5), np.uint8)) > 0) & (scratch == 0)
    damaged[rim] = np.clip(damaged[rim].astype(int) + 60, 0, 255).astype(np.uint8)
    damaged[tear > 0] = 250
    return damaged, {common_pb2.SCRATCH: scratch, common_pb2.TEAR: tear}


def test_each_candidate_returns_what_it_repaired_by_kind(server):
    damaged, masks = damaged_photo()
    report = common_pb2.DamageReport(masks=[common_pb2.DamageMask(type=kind, mask=to_proto(mask))
                                            for kind, mask in masks.items()])
    stub = generator_pb2_grpc.GeneratorStub(channel(server.port))
    for engine in ("learned", "telea"):
        request = generator_pb2.GenerateRequest(image=to_proto(damaged), damage=report, seeds=[1, 2], engine=engine)
        for candidate in stub.Generate(request, timeout=120):
            repaired = {m.type: m for m in candidate.repaired}
            assert set(repaired) == {common_pb2.SCRATCH, common_pb2.TEAR}, engine
            reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * REACH + 1, 2 * REACH + 1))
            for kind, found in masks.items():
                assert repaired[kind].mask.encoding == common_pb2.Image.PNG
                shown = from_proto(repaired[kind].mask, channels=(1,)) > 0
                assert repaired[kind].coverage == pytest.approx(shown.mean())
                # What the detector found is repaired, grown, and never farther than the fill reaches.
                assert shown[found > 0].mean() > 0.97 and shown.sum() > found.astype(bool).sum()
                assert not (shown & (cv2.dilate(found, reach) == 0)).any()
            if engine == "learned":  # the pale rim beside the crack went with it
                rim = (cv2.dilate(masks[common_pb2.SCRATCH], np.ones((5, 5), np.uint8)) > 0)
                shown = from_proto(repaired[common_pb2.SCRATCH].mask, channels=(1,)) > 0
                assert shown[rim & (masks[common_pb2.TEAR] == 0)].mean() > 0.9


def test_where_kinds_meet_the_larger_repair_owns_the_pixel():
    scratch, tear = np.zeros((40, 40), np.uint8), np.zeros((40, 40), np.uint8)
    scratch[20, :] = 255
    tear[:, 30:] = 255
    filled = (cv2.dilate(np.maximum(scratch, tear), np.ones((3, 3), np.uint8)) > 0).astype(np.uint8) * 255
    split = by_type(filled, {common_pb2.SCRATCH: scratch, common_pb2.TEAR: tear, common_pb2.STAIN: np.zeros_like(tear)})
    assert set(split) == {common_pb2.SCRATCH, common_pb2.TEAR}
    assert split[common_pb2.TEAR][20, 30:].all() and not split[common_pb2.SCRATCH][:, 30:].any()
    assert np.array_equal(np.maximum(split[common_pb2.SCRATCH], split[common_pb2.TEAR]), filled)
