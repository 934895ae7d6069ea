"""Faces hidden by cracks or by a small scan are still found, so their features are spared and identity checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from revive.v1 import common_pb2

from services.detector.engines.unet import UNetDetector
from services.detector.face_aware import with_faces
from services.detector.service import DEFINITION as DETECTOR
from services.vision.faces.analyzer import transformed

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real-photos"


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
