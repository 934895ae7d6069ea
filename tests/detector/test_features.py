"""A face's own features are not damage: a speck found on an eye is left, a crack across it is kept, and the
frames of spectacles are never filled away."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from services.common.runtime import RuntimeOptions
from services.detector.features import feature_mask, spare_features, spare_region, spectacle_frames
from services.vision import parsing
from services.vision.faces.analyzer import shared_face_analyzer

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = RuntimeOptions(providers=("cpu",))


def test_specks_on_an_eye_are_spared_and_cracks_across_it_are_kept():
    photo = np.asarray(Image.open(ROOT / "tests" / "data" / "faces" / "sample3.jpg").convert("RGB"))
    face = shared_face_analyzer(ROOT / "models", OPTIONS)
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
    # A crack network, as real prints crack: branches spanning the photo, one of them across the eye. As a
    # whole it is as wide as it is long; the stretch across the eye is still a crack.
    network = np.zeros(photo.shape[:2], np.uint8)
    height, width = photo.shape[:2]
    cv2.line(network, (0, int(eye[1]) + 4), (width - 1, int(eye[1]) - 4), 255, 3)
    cv2.line(network, (int(eye[0]) + 30, 0), (int(eye[0]) - 20, height - 1), 255, 3)
    cv2.line(network, (0, 0), (int(eye[0]) + 30, int(eye[1]) + 60), 255, 2)
    on_eye = (network >= 128) & (features > 0)
    assert on_eye.sum() > 20
    assert np.array_equal(spare_features(network, features), network)
    with_speck = network.copy()
    cv2.circle(with_speck, (int(eye[0]), int(eye[1]) - 14), 4, 255, -1)  # apart from the crack, on the eye
    spared = spare_features(with_speck, features)
    assert spared[int(eye[1]) - 14, int(eye[0])] < 128
    assert np.array_equal(spared >= 128, (network >= 128) | ((with_speck >= 128) & (features == 0)))
    far = np.zeros(photo.shape[:2], np.uint8)
    cv2.circle(far, (5, 5), 3, 255, -1)  # a speck away from any face stays damage
    assert np.array_equal(spare_features(far, features), far)


def test_on_a_black_and_white_print_a_rust_spot_on_the_lip_is_foxing_and_the_pupil_stays_a_feature():
    """Told apart by the print's tint: on a grey (or sepia) print every feature has the print's colour."""
    photo = np.asarray(Image.open(ROOT / "tests" / "data" / "faces" / "sample3.jpg").convert("RGB"))
    faces = shared_face_analyzer(ROOT / "models", OPTIONS).analyze(photo)
    features = feature_mask(faces, photo.shape[:2])
    points = np.array([(p.x, p.y) for p in faces[0].landmarks])
    eye, lip = points[36:42].mean(axis=0).astype(int), points[[51, 57]].mean(axis=0).astype(int)
    sepia = (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None] * np.array([1.0, 0.88, 0.7])).astype(np.uint8)
    damage = np.zeros(photo.shape[:2], np.uint8)
    for print_rgb in (np.repeat(sepia[..., :1], 3, axis=2), sepia):
        spotted = print_rgb.copy()
        cv2.circle(spotted, tuple(int(v) for v in lip), 4, (150, 80, 30), -1)  # foxing: rust brown
        cv2.circle(damage, tuple(int(v) for v in lip), 4, 255, -1)
        cv2.circle(damage, tuple(int(v) for v in eye), 3, 255, -1)  # the pupil, found as a speck
        spared = spare_features(damage, features, spotted)
        assert spared[lip[1], lip[0]] >= 128  # the rust spot is repaired
        assert spared[eye[1], eye[0]] < 128  # the pupil is left
        # Not knowing the print is black-and-white (a colour photo: lips are red), both are spared.
        assert (spare_features(damage, features) >= 128).sum() == 0


def with_spectacles(photo: np.ndarray, landmarks: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo with dark spectacles drawn on the face (rims, bridge, temples to the ears), and their pixels."""
    rims = np.zeros(photo.shape[:2], np.uint8)
    thickness = max(2, int(width / 60))
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    half = np.array([0.16, 0.1]) * width
    for eye in (left, right):
        cv2.rectangle(rims, tuple((eye - half).astype(int)), tuple((eye + half).astype(int)), 255, thickness)
    lift = np.array([0.16, -0.04]) * width
    for start, end in ((left + lift, right - lift * [1, -1]), (left - lift * [1, -1], landmarks[0]),
                       (right + lift, landmarks[16])):
        cv2.line(rims, tuple(start.astype(int)), tuple(end.astype(int)), 255, thickness)
    drawn = photo.copy()
    drawn[rims > 0] = (25, 20, 20)
    return drawn, rims


def test_spectacle_frames_are_never_damage_but_cracks_through_the_lenses_are():
    photo = np.asarray(Image.open(ROOT / "tests" / "data" / "faces" / "sample3.jpg").convert("RGB"))
    parser = parsing.shared_face_parser(ROOT / "models", OPTIONS)
    (face, *_) = shared_face_analyzer(ROOT / "models", OPTIONS).analyze(photo)
    landmarks = np.array([(p.x, p.y) for p in face.landmarks])
    bare = spectacle_frames(parsing.region_mask(parser.parse(photo, face), parsing.GLASSES), face.box)
    assert bare.sum() == 0  # no spectacles, nothing spared
    drawn, rims = with_spectacles(photo, landmarks, face.box.width)
    frames = spectacle_frames(parsing.region_mask(parser.parse(drawn, face), parsing.GLASSES), face.box)
    eye = landmarks[36:42].mean(axis=0).astype(int)
    crack = np.zeros(photo.shape[:2], np.uint8)
    cv2.line(crack, (int(eye[0]) - 30, int(eye[1]) - 4), (int(eye[0]) + 30, int(eye[1]) + 4), 255, 2)
    spared = spare_region(np.maximum(rims, crack), frames)
    frame_left = ((spared >= 128) & (rims > 0) & (crack == 0)).sum() / ((rims > 0) & (crack == 0)).sum()
    assert frame_left < 0.1  # a detector that took the rims for scratches no longer has them filled
    assert ((spared >= 128) & (crack > 0)).sum() > 0.8 * (crack > 0).sum()  # the crack behind the lens is repaired
