"""The pose landmarks (MediaPipe's BlazePose full model in ONNX), framed on found faces, and the limbs they draw."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.common.artifacts import sha256
from services.common.runtime import RuntimeOptions
from services.generator import colourize
from services.vision import pose
from services.vision.faces.analyzer import FaceAnalyzer, box_of

MODELS = Path(__file__).resolve().parents[2] / "models"
FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
OPTIONS = RuntimeOptions(providers=("cpu",), threads=1)


@pytest.fixture(scope="module")
def landmarker() -> pose.PoseLandmarker:
    return pose.PoseLandmarker(MODELS / pose.MODEL_FILE, OPTIONS)


@pytest.fixture(scope="module")
def sitters() -> tuple[np.ndarray, list[np.ndarray]]:
    """sample1 (three women, upright, from the waist up) at 960x640 and its faces' boxes."""
    rgb = cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (960, 640), interpolation=cv2.INTER_AREA)
    return rgb, [box_of(face) for face in FaceAnalyzer(MODELS / "faces", OPTIONS).analyze(rgb)]


def test_manifest_records_a_passed_check_against_litert_for_this_file() -> None:
    manifest = json.loads((MODELS / "pose" / "manifest.json").read_text())
    assert manifest["source"]["license"] == "Apache-2.0" and (MODELS / "pose" / "LICENSE").exists()
    assert manifest["model"]["sha256"] == sha256(MODELS / pose.MODEL_FILE)
    assert manifest["check"]["passed"] and manifest["check"]["model_sha256"] == manifest["model"]["sha256"]


def test_frame_puts_the_body_below_the_face_in_the_middle_of_the_crop() -> None:
    box = np.array([100.0, 50.0, 40.0, 50.0])  # x, y, width, height
    matrix = pose.frame(box)
    face_centre = matrix @ np.array([120.0, 75.0, 1.0])
    body_centre = matrix @ np.array([120.0, 75.0 + pose.FRAME_BELOW * 50.0, 1.0])
    assert np.allclose(body_centre, pose.SIDE / 2)
    assert face_centre[0] == pytest.approx(pose.SIDE / 2)
    assert face_centre[1] == pytest.approx(pose.SIDE / 2 - pose.FRAME_BELOW * pose.SIDE / pose.FRAME_SIDE)


def test_each_sitters_shoulders_and_hips_lie_below_her_face_either_side_of_it(landmarker, sitters) -> None:
    rgb, boxes = sitters
    poses = landmarker.poses(rgb, boxes)
    assert len(boxes) == 3 and len(poses) == 3
    for found, (x, y, width, height) in zip(poses, boxes, strict=True):
        left, right = found.points[pose.LEFT_SHOULDER], found.points[pose.RIGHT_SHOULDER]
        assert found.seen(pose.LEFT_SHOULDER, pose.RIGHT_SHOULDER)
        middle, centre = y + height / 2, x + width / 2
        assert left[1] > middle and right[1] > middle  # below the face (heads lean: not always below the chin)
        assert min(left[0], right[0]) < centre < max(left[0], right[0])  # either side of it
        assert abs(left[0] - right[0]) > width / 2  # a body is wider than half a face box, even turned
        hips = found.points[[pose.LEFT_HIP, pose.RIGHT_HIP], 1]
        assert (hips > max(left[1], right[1]) + height).all()  # and the hips well below the shoulders
        assert found.face_width == pytest.approx(width)


def test_a_crop_with_nobody_in_it_gives_no_pose(landmarker) -> None:
    wall = np.full((600, 600, 3), 128, np.uint8)
    assert landmarker.poses(wall, [np.array([280.0, 100.0, 40.0, 50.0])]) == []
    assert landmarker.poses(wall, []) == []
    assert landmarker.poses(wall, [np.array([280.0, 100.0, 0.0, 0.0])]) == []  # an empty box: nothing to frame


def test_limbs_are_drawn_between_visible_points_ending_in_a_hand_inside_the_photo() -> None:
    points = np.zeros((33, 2))
    visibility = np.zeros(33)
    points[pose.LEFT_SHOULDER], points[pose.LEFT_ELBOW], points[pose.LEFT_WRIST] = (20, 20), (20, 60), (20, 100)
    visibility[[pose.LEFT_SHOULDER, pose.LEFT_ELBOW, pose.LEFT_WRIST]] = 0.9
    arm = [pose.Pose(points, visibility, face_width=20.0)]
    mask = pose.limb_mask(arm, (120, 60), scale=1.0)
    assert mask[40, 20] and mask[40, 16] and not mask[40, 30]  # the upper arm, 0.25 face widths either side
    assert mask[85, 20] and mask[85, 16] and not mask[85, 28]  # the forearm, 0.22
    half = pose.limb_mask(arm, (60, 30), scale=0.5)
    assert half[20, 10] and half[45, 10] and not half[20, 20]
    # The wrist hidden, or beyond the photo's edge (an arm cut by the frame, perhaps a sleeve): no arm at all.
    visibility[pose.LEFT_WRIST] = 0.1
    assert not pose.limb_mask(arm, (120, 60), scale=1.0).any()
    visibility[pose.LEFT_WRIST] = 0.9
    assert not pose.limb_mask(arm, (90, 60), scale=1.0).any()


def test_a_bare_arm_in_the_parsed_clothes_is_skin_only_where_a_limb_is_found() -> None:
    """A low neckline puts bare skin into the parsed clothes; by tone alone the arm beside it is clothes."""
    lightness = np.full((40, 40), 20.0, np.float32)  # dark dress
    lightness[4:14, 14:26] = 70.0  # the face's skin
    lightness[14:24, 8:30] = 70.0  # bare chest and shoulders, parsed as clothes
    lightness[16:38, 30:38] = 70.0  # a bare arm, beyond the parse
    labels = np.zeros((40, 40), np.uint8)
    labels[4:14, 14:26] = colourize.parsing.Label.SKIN
    labels[14:27, 8:30] = colourize.parsing.Label.CLOTH  # the neckline and the top of the dress
    person = np.ones((40, 40), np.float32)
    arm = np.zeros((40, 40), bool)
    arm[16:38, 29:39] = True
    without, _ = colourize.region_map(lightness, [labels], person, True)
    with_limbs, _ = colourize.region_map(lightness, [labels], person, True, arm)
    assert (without[18:36, 32:36] != colourize.SKIN).all()
    assert (with_limbs[18:36, 32:36] == colourize.SKIN).all()
    assert (with_limbs[28:38, 10:28] == colourize.CLOTH).all()  # the dark dress stays clothes
