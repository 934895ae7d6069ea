"""The person mask (MediaPipe's selfie segmentation in ONNX) and what it does for the hair colour."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from revive.v1 import common_pb2

from services.common.artifacts import sha256
from services.common.runtime import RuntimeOptions
from services.generator import hair
from services.generator.engine import RestorationInput
from services.generator.engines.learned import LearnedGenerator
from services.vision.faces.analyzer import FaceAnalyzer, box_of
from services.vision.person import MODEL_FILE, SIDE, PersonSegmenter, person_frame, stretch, whole
from tests.photos import portrait

MODELS = Path(__file__).resolve().parents[2] / "models"
FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
OPTIONS = RuntimeOptions(providers=("cpu",), threads=1)
#: A pixel the person mask gives less than this is background: the hair colour must leave it alone.
BACKGROUND = 0.01


@pytest.fixture(scope="module")
def segmenter() -> PersonSegmenter:
    return PersonSegmenter(MODELS / MODEL_FILE, OPTIONS)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """sample1 (three women before a dark room) at 960x640, as the learned engine's hair test uses it."""
    rgb = cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (960, 640), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def faces(photo: np.ndarray) -> list[common_pb2.Face]:
    found = FaceAnalyzer(MODELS / "faces", OPTIONS).analyze(photo)
    assert len(found) == 3
    return found


def head_windows(faces: list[common_pb2.Face], shape: tuple[int, ...]) -> np.ndarray:
    """Where `hair.recolour` may change anything: the union of the faces' head windows."""
    windows = np.zeros(shape[:2], bool)
    for face in faces:
        windows[hair.head_window(face, *shape[:2])] = True
    return windows


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per pixel, the largest change of any channel (0..255)."""
    return np.abs(after.astype(int) - before).max(axis=2)


def test_the_onnx_file_is_the_one_its_manifest_describes():
    folder = MODELS / MODEL_FILE.parent
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"]["file"] == MODEL_FILE.name
    assert sha256(MODELS / MODEL_FILE) == manifest["model"]["sha256"]
    assert (MODELS / MODEL_FILE).stat().st_size < 2_000_000
    assert manifest["source"]["license"] == "Apache-2.0"
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    # The recorded comparison with mediapipe was made on this very file, and passed.
    assert manifest["check"]["model_sha256"] == manifest["model"]["sha256"]
    assert manifest["check"]["passed"]
    assert manifest["check"]["worst_max_abs_diff"] <= manifest["check"]["tolerance_max_abs_diff"]


def test_stretch_aligns_corners_and_does_not_antialias():
    picture = portrait(2 * SIDE, 2 * SIDE)
    assert np.array_equal(stretch(picture[:SIDE, :SIDE]), picture[:SIDE, :SIDE])  # same size: the photo itself
    # Twice the size: tensor pixel x samples photo pixel 2x exactly, as MediaPipe's warp does.
    assert np.array_equal(stretch(picture), picture[::2, ::2])


def test_mask_is_a_probability_at_the_photos_size(segmenter):
    mask = segmenter.mask(portrait(300, 200))
    assert mask.shape == (200, 300) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_mask_covers_the_faces_and_not_the_room(segmenter, photo, faces):
    mask = segmenter.mask(photo)
    for face in faces:
        outline = np.zeros(mask.shape, np.uint8)
        points = np.array([(p.x, p.y) for p in face.landmarks], np.float32)
        cv2.fillConvexPoly(outline, cv2.convexHull(points).astype(np.int32), 1)
        assert mask[outline > 0].mean() > 0.8
    corner = mask.shape[0] // 10
    assert mask[:corner].mean() < 0.05  # the wall above their heads
    # The bottom-right corner holds a chair the model partly takes for a person (mean 0.12 there).
    for rows, cols in ((slice(None, corner), slice(None, corner)), (slice(None, corner), slice(-corner, None)),
                       (slice(-corner, None), slice(None, corner)), (slice(-corner, None), slice(-corner, None))):
        assert mask[rows, cols].mean() < 0.3


def test_hair_colour_stays_off_a_dark_background_of_the_hairs_colour(segmenter, photo, faces):
    mask = segmenter.mask(photo)
    background = (mask < BACKGROUND) & head_windows(faces, photo.shape)
    person = (mask > 0.9) & head_windows(faces, photo.shape)
    unmasked = changed(photo, hair.recolour(photo, faces, common_pb2.BLOND))
    masked = changed(photo, hair.recolour(photo, faces, common_pb2.BLOND, person=segmenter.probability(photo)))
    assert (unmasked[background] > 10).sum() > 10_000  # the dark room behind the dark hair turned blond
    assert masked[background].max() <= 3  # now it is left alone, but for rounding
    assert (masked[person] > 10).sum() > 0.9 * (unmasked[person] > 10).sum()  # the hair still changes


def test_learned_engine_recolours_within_the_person_mask(photo, faces):
    engine = LearnedGenerator(models_dir=MODELS, options=OPTIONS)

    def restore(colour: int) -> np.ndarray:
        request = RestorationInput(photo, {}, common_pb2.DamageReport(faces=faces),
                                   common_pb2.RestoreOptions(hair_color=colour))
        return engine.generate(request, 0)

    plain = restore(common_pb2.HAIR_COLOR_UNSPECIFIED)
    blond = changed(plain, restore(common_pb2.BLOND))
    # The engine's mask is taken on its restoration before the hair colour: `plain`.
    mask = whole(engine.segmenter.around_faces(plain, [box_of(face) for face in faces]), photo.shape[:2])
    background = (mask < BACKGROUND) & head_windows(faces, photo.shape)
    assert background.sum() > 10_000
    assert blond[background].max() <= 3
    assert (blond > 10).sum() > 10_000


def test_a_small_figure_beside_a_large_one_is_found_around_its_face(segmenter):
    """The network was made for one person near the camera: beside a large group, a second, smaller copy of a
    photo is lost to it (MediaPipe's own result), and found in the crop framed on each of its faces; the empty
    wall above stays empty."""
    rgb = cv2.cvtColor(cv2.imread(str(FACES / "sample6.jpg")), cv2.COLOR_BGR2RGB)
    small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    canvas = np.full((rgb.shape[0], rgb.shape[1] + small.shape[1] + 40, 3), 128, np.uint8)
    canvas[:, :rgb.shape[1]] = rgb
    figure = slice(rgb.shape[0] - small.shape[0], None), slice(rgb.shape[1] + 20, rgb.shape[1] + 20 + small.shape[1])
    canvas[figure] = small
    faces = FaceAnalyzer(MODELS / "faces", OPTIONS).analyze(canvas)
    alone = whole(segmenter.probability(canvas), canvas.shape[:2])
    framed = whole(segmenter.around_faces(canvas, [box_of(face) for face in faces]), canvas.shape[:2])
    assert (alone[figure] > 0.5).mean() < 0.05
    assert (framed[figure] > 0.5).mean() > 0.15
    assert np.all(framed >= alone - 1e-6)  # the crops add people; they never take one away
    wall = slice(0, rgb.shape[0] - small.shape[0]), slice(rgb.shape[1], None)
    assert (framed[wall] > 0.5).mean() < 0.01


def test_a_faces_frame_is_cut_to_the_photo_and_a_frame_that_is_the_photo_adds_nothing(segmenter):
    """A face at the border frames a crop that stops at the photo's edges; a face whose frame is the whole photo
    (a close-up) asks the network nothing new, so the map is the photo's own."""
    assert person_frame(np.array([-20.0, -10.0, 100.0, 120.0]), 400, 300) == (0, 400, 0, 280)
    assert person_frame(np.array([250.0, 300.0, 40.0, 40.0]), 400, 300) == (270, 400, 170, 300)
    picture = portrait(240, 320)
    close_up = [np.array([60.0, 40.0, 120.0, 160.0])]
    assert np.array_equal(segmenter.around_faces(picture, close_up), segmenter.probability(picture))
