"""A face's own features are not damage: a speck found on an eye is left, a crack across it is kept."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from services.common.runtime import RuntimeOptions
from services.detector.features import feature_mask, spare_features
from services.vision.faces.analyzer import shared_face_analyzer

ROOT = Path(__file__).resolve().parents[2]


def test_specks_on_an_eye_are_spared_and_cracks_across_it_are_kept():
    photo = np.asarray(Image.open(ROOT / "tests" / "data" / "faces" / "sample3.jpg").convert("RGB"))
    face = shared_face_analyzer(ROOT / "models", RuntimeOptions(providers=("cpu",)))
    faces = face.analyze(photo)
    assert faces and len(faces[0].landmarks) == 68
    features = feature_mask(faces, photo.shape[:2])
    eye = np.array([(p.x, p.y) for p in faces[0].landmarks[36:42]]).mean(axis=0).astype(int)
    damage = np.zeros(photo.shape[:2], np.uint8)
    cv2.circle(damage, tuple(int(v) for v in eye), 3, 255, -1)  # a "speck": the pupil's highlight, say
    spared = spare_features(damage, features)
    assert (spared >= 128).sum() == 0
    crack = np.zeros(photo.shape[:2], np.uint8)
    cv2.line(crack, (int(eye[0]) - 60, int(eye[1]) - 8), (int(eye[0]) + 60, int(eye[1]) + 8), 255, 2)
    assert np.array_equal(spare_features(crack, features), crack)  # long and thin: damage, repaired
    far = np.zeros(photo.shape[:2], np.uint8)
    cv2.circle(far, (5, 5), 3, 255, -1)  # a speck away from any face stays damage
    assert np.array_equal(spare_features(far, features), far)
