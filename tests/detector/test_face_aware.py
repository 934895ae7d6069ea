"""Faces hidden by cracks, fading or a small scan are still found, so their features are spared and identity checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from revive.v1 import common_pb2

from services.common.engines import runtime_options
from services.detector.engines.unet import UNetDetector
from services.detector.face_aware import with_faces
from services.detector.service import DEFINITION as DETECTOR
from services.vision.faces.analyzer import box_of, shared_face_analyzer, similarity, transformed
from services.vision.faces.geometry import iou

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real-photos"
FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


def test_scaled_faces_move_box_and_landmarks_together():
    face = common_pb2.Face(box=common_pb2.Box(x=10, y=20, width=30, height=40), score=0.9,
                           landmarks=[common_pb2.Point(x=12, y=24)], age=30)
    half = transformed(face, 0.5)
    assert (half.box.x, half.box.y, half.box.width, half.box.height) == (5, 10, 15, 20)
    assert (half.landmarks[0].x, half.landmarks[0].y) == (6, 12) and half.age == 30 and half.score == face.score


@pytest.mark.skipif(not (REAL / "old_w_scratch_b.png").exists(), reason="needs ../shared/real-photos")
def test_a_cracked_small_portrait_has_its_face_found_and_its_eyes_spared():
    """A 256 px scan with a crack across the brows: the face detector misses it as it is; found on the photo
    enlarged, the face's eyes are no longer taken for specks of damage."""
    rgb = np.asarray(Image.open(REAL / "old_w_scratch_b.png").convert("RGB"))
    detector = with_faces(UNetDetector)(DETECTOR.parse(["--threads", "2", "--providers", "cpu"]))
    detection = detector.detect(rgb, analyze_faces=True)
    assert len(detection.faces) == 1
    face = detection.faces[0]
    eyes = np.array([(p.x, p.y) for p in face.landmarks[36:48]])
    assert 60 < eyes[:, 1].mean() < 120 and 60 < eyes[:, 0].mean() < 180  # where the boy's eyes are
    top, bottom = int(eyes[:, 1].min()) - 3, int(eyes[:, 1].max()) + 4
    left, right = int(eyes[:, 0].min()) - 3, int(eyes[:, 0].max()) + 4
    damage = np.maximum(detection.masks[common_pb2.SCRATCH], detection.masks[common_pb2.STAIN])
    # Compact specks on the eyes are spared; what stays flagged there is the long crack, not the eyes.
    assert (damage[top:bottom, left:right] >= 128).mean() < 0.1
    # The crack network crossing the boy's right brow stays damage there: its stretch over the brow is long
    # and thin, whatever the shape of the network it belongs to.
    assert (detection.masks[common_pb2.SCRATCH][92:96, 87:105] >= 128).sum() >= 20


def test_faces_a_faded_sepia_print_hides_are_found_on_a_second_look():
    """Faded to a fifth of its contrast and toned sepia, a group photo shows the face detector no face; the
    detector still reports each of them, where the original photo has it."""
    clean = np.asarray(Image.open(FACES / "sample1.jpg").convert("RGB")).astype(np.float32)
    faded = np.clip((200 + (clean - 200) * 0.2) * np.array([1.0, 0.93, 0.8]), 0, 255).astype(np.uint8)
    config = DETECTOR.parse(["--threads", "2", "--providers", "cpu"])
    detector = with_faces(UNetDetector)(config)
    analyzer = shared_face_analyzer(config.models_dir, runtime_options(config))
    assert analyzer.analyze(faded) == []
    truth = analyzer.analyze(clean.astype(np.uint8))
    found = detector.detect(faded, analyze_faces=True).faces
    assert len(truth) == 3 and len(found) == len(truth)
    for face in truth:
        assert iou(box_of(face), np.stack([box_of(other) for other in found])).max() > 0.6
        assert max(similarity(face, other) for other in found) > 0.9
