"""A tear over an eye filled from the face's other side: closer to the truth than patches of the photo around it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from revive.v1 import common_pb2

from services.common.face_mirror import midline
from services.common.inpainting import fill_damage
from services.common.runtime import RuntimeOptions
from services.vision.faces.analyzer import FaceAnalyzer

ROOT = Path(__file__).resolve().parents[2]
#: face-api's sample photo (MIT, tests/data/faces): a woman facing the camera.
PHOTO = ROOT / "tests" / "data" / "faces" / "sample3.jpg"


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer(ROOT / "models" / "faces", RuntimeOptions(providers=("cpu",), threads=1))


def psnr_inside(image: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    error = (image.astype(np.float64) - truth.astype(np.float64))[where]
    return float(10 * np.log10(255.0**2 / np.mean(error**2)))


def test_a_tear_over_an_eye_takes_the_other_eye_not_a_mosaic(analyzer: FaceAnalyzer) -> None:
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    face = max(analyzer.analyze(photo), key=lambda found: found.box.width)
    points = np.array([(point.x, point.y) for point in face.landmarks])
    eye = points[36:42].mean(axis=0)
    tear = np.zeros(photo.shape[:2], np.uint8)
    radius = int(face.box.width * 0.16)
    cv2.ellipse(tear, (int(eye[0]), int(eye[1])), (radius, int(radius * 0.8)), 20, 0, 360, 255, -1)
    torn = photo.copy()
    torn[tear > 0] = (235, 230, 220)  # the bare paper
    faces = analyzer.analyze(torn)
    patched, mirrored = fill_damage(torn, tear), fill_damage(torn, tear, faces=faces)
    inside = tear > 0
    assert psnr_inside(mirrored, photo, inside) > psnr_inside(patched, photo, inside) + 1.0
    # Nothing but the tear and the rims the fill takes with it changes.
    near = cv2.dilate(tear, np.ones((9, 9), np.uint8)) > 0
    assert np.array_equal(mirrored[~near], torn[~near])


def test_only_a_face_that_looks_at_the_camera_has_a_midline(analyzer: FaceAnalyzer) -> None:
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    face = max(analyzer.analyze(photo), key=lambda found: found.box.width)
    line = midline(face)
    assert line is not None
    centre, across = line
    points = np.array([(point.x, point.y) for point in face.landmarks])
    eyes = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    # The midline runs between the eyes: each is mirrored onto the other.
    reflected = eyes[0] - 2 * ((eyes[0] - centre) @ across) * across
    assert np.linalg.norm(reflected - eyes[1]) < 0.15 * np.linalg.norm(eyes[1] - eyes[0])
    turned = common_pb2.Face()
    turned.CopyFrom(face)
    nose = turned.landmarks[30]
    nose.x += 0.6 * float(np.linalg.norm(eyes[1] - eyes[0]))  # the nose well out to one side: a face turned away
    assert midline(turned) is None
    assert midline(common_pb2.Face(box=face.box)) is None  # no landmarks
