"""FaceParser (BiSeNet, CelebAMask-HQ) with the committed ONNX file, on real photos.

The parse is checked against what the 68 face-api landmarks say about the
same face: the nose tip is nose, the eye centres are eyes, hair lies above the
eyes, lips below the nose, neck below the lips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from revive.v1 import common_pb2

from services.common.artifacts import sha256
from services.common.runtime import RuntimeOptions
from services.vision import parsing
from services.vision.faces.analyzer import FaceAnalyzer
from services.vision.parsing import (
    BROWS,
    CLOTH,
    EYES,
    FACE,
    GLASSES,
    HAIR,
    LIPS,
    MOUTH,
    NECK,
    NOSE,
    OUTSIDE,
    SIDE,
    SKIN,
    FaceParser,
    Framing,
    Label,
    region_mask,
)

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
MODEL = MODELS / parsing.MODEL_FILE
PHOTOS = ROOT / "tests" / "data" / "faces"
#: Real old scans, never committed (their README): tests on them skip where the folder is absent.
REAL = ROOT.parent / "shared" / "real-photos"
OPTIONS = RuntimeOptions(providers=("cpu",), threads=1)

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (training/faces/convert_parsing.py)")


def photo(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def at(labels: np.ndarray, point: np.ndarray) -> int:
    return int(labels[round(point[1]), round(point[0])])


def centre_y(labels: np.ndarray, region: frozenset) -> float:
    rows, _ = np.nonzero(region_mask(labels, region))
    assert rows.size > 0, f"no pixel of {sorted(region)}"
    return float(rows.mean())


@pytest.fixture(scope="module")
def parser() -> FaceParser:
    return FaceParser(MODEL, OPTIONS)


@pytest.fixture(scope="module")
def sample(parser: FaceParser) -> tuple[np.ndarray, list[common_pb2.Face], list[np.ndarray]]:
    """sample3: three people facing the camera, no glasses; each face's label map."""
    rgb = photo(PHOTOS / "sample3.jpg")
    faces = FaceAnalyzer(MODELS / "faces", OPTIONS).analyze(rgb)
    assert len(faces) == 3
    return rgb, faces, parser.parse_faces(rgb, faces)


def test_artifact_is_the_one_the_manifest_describes() -> None:
    entry = json.loads((MODEL.parent / "manifest.json").read_text())["models"]["face_parsing"]
    assert entry["file"] == MODEL.name
    assert sha256(MODEL) == entry["sha256"]
    assert MODEL.stat().st_size == entry["bytes"] <= 30 * 2**20
    assert "non-commercial" in entry["data_terms"]
    assert len(entry["output"]["labels"]) == len(Label) and entry["output"]["labels"][Label.HAIR] == "hair"
    for key in ("onnx_vs_torch_fp32", "onnx_vs_package_reference"):
        assert entry["check"][key]["label_agreement_min"] >= entry["check"]["min_agreement_required"]


def test_face_parts_sit_where_the_landmarks_put_them(sample) -> None:
    _, faces, maps = sample
    for face, labels in zip(faces, maps):
        points = parsing.landmarks_of(face)
        assert at(labels, points[30]) in NOSE  # nose tip
        assert at(labels, points[27]) in NOSE | SKIN  # top of the nose bridge, between the eyes
        for eye in (points[36:42], points[42:48]):
            assert at(labels, eye.mean(axis=0)) in EYES
        assert at(labels, (points[62] + points[66]) / 2) in MOUTH  # between the inner lips
        # Nearly every brow, eye, nose and mouth landmark lands on the face proper.
        inner = [at(labels, p) for p in points[17:68]]
        assert np.mean([label in FACE for label in inner]) >= 0.9
        brows_y, eyes_y = points[17:27, 1].mean(), points[36:48, 1].mean()
        assert centre_y(labels, BROWS) < eyes_y
        # Going up the middle of the face from the nose tip: skin and nose, then hair above the brows.
        column = labels[:, round(points[27, 0])]
        hair_rows = np.nonzero(column == Label.HAIR)[0]
        assert hair_rows.size > 0 and hair_rows.min() < brows_y
        assert not np.any((hair_rows > brows_y) & (hair_rows < points[30, 1]))
        # Long hair falls beside the face, but over the eyes' columns most of it is above the brows.
        left, right = points[[36, 45], 0].round().astype(int)
        assert np.median(np.nonzero(labels[:, left:right] == Label.HAIR)[0]) < brows_y
        assert points[30, 1] < centre_y(labels, LIPS) < centre_y(labels, NECK)


def test_labels_are_in_photo_coordinates_and_outside_beyond_the_square(sample) -> None:
    rgb, faces, maps = sample
    for face, labels in zip(faces, maps):
        assert labels.shape == rgb.shape[:2] and labels.dtype == np.uint8
        corners = parsing.framing(face).corners()
        left, top = np.floor(corners.min(axis=0)).astype(int)
        right, bottom = np.ceil(corners.max(axis=0)).astype(int)
        inside = labels != OUTSIDE
        rows, cols = np.nonzero(inside)
        assert rows.min() >= max(top, 0) and rows.max() < bottom and cols.min() >= max(left, 0) and cols.max() < right
        assert labels.max() == OUTSIDE and labels[inside].max() < len(Label)
        # The square's middle is the face: most of the central tenth is skin or a face part.
        middle = (corners[0] + corners[2]) / 2
        side = parsing.framing(face).side
        window = labels[int(middle[1] - side / 20):int(middle[1] + side / 20),
                        int(middle[0] - side / 20):int(middle[0] + side / 20)]
        assert region_mask(window, FACE).mean() > 0.9


def test_a_grey_copy_parses_like_the_colour_photo(parser: FaceParser, sample) -> None:
    """Old photos are black-and-white: the network, trained on colour, must still find the same parts."""
    rgb, faces, maps = sample
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    grey_maps = parser.parse_faces(grey, faces)
    for colour, mono in zip(maps, grey_maps):
        inside = colour != OUTSIDE
        assert np.array_equal(inside, mono != OUTSIDE)
        assert (colour[inside] == mono[inside]).mean() >= 0.95
        # The parts the generator leans on most agree better still (intersection over union).
        for region in (SKIN, HAIR):
            a, b = region_mask(colour, region), region_mask(mono, region)
            assert (a & b).sum() / (a | b).sum() >= 0.9
    # HxW grey is the same as grey replicated to three channels.
    face = faces[0]
    assert np.array_equal(parser.parse(grey, face), parser.parse(np.repeat(grey[:, :, None], 3, axis=2), face))


def test_a_bare_detector_box_frames_the_face_well_enough(parser: FaceParser, sample) -> None:
    """Without landmarks the square comes from the box: the same parts in the same places, mostly."""
    rgb, faces, maps = sample
    for face, labels in zip(faces, maps):
        from_box = parser.parse(rgb, face.box)
        points = parsing.landmarks_of(face)
        assert at(from_box, points[30]) in NOSE
        both = (labels != OUTSIDE) & (from_box != OUTSIDE)
        assert (labels[both] == from_box[both]).mean() >= 0.85


def test_framing_follows_karras_alignment_and_maps_back_exactly() -> None:
    # Eyes level and 100 px apart, mouth 90 px below: the square is 4 x 100 wide and upright.
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = (200, 300)
    landmarks[42:48] = (300, 300)
    landmarks[48], landmarks[54] = (220, 390), (280, 390)
    square = parsing.framing_from_landmarks(landmarks)
    assert square.side == pytest.approx(400)
    np.testing.assert_allclose(square.across, [400, 0], atol=1e-9)
    np.testing.assert_allclose(square.origin + (square.across + square.down) / 2, [250, 309])
    # Tilted 30 degrees about the eyes' midpoint: the square turns with the face.
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = parsing.framing_from_landmarks((landmarks - (250, 300)) @ rotation.T + (250, 300))
    assert np.degrees(np.arctan2(tilted.across[1], tilted.across[0])) == pytest.approx(30)
    assert tilted.side == pytest.approx(400)

    # crop() samples the photo where the square says, place() puts each network pixel back there.
    height, width = 600, 500
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = np.stack([xs * 255 // width, ys * 255 // height, np.zeros_like(xs)], axis=-1).astype(np.uint8)
    labels = ((np.arange(SIDE)[None, :] // 64) + 8 * (np.arange(SIDE)[:, None] // 64)).astype(np.uint8)
    for square in (Framing(np.array([60.0, 80.0]), np.array([300.0, 0.0]), np.array([0.0, 300.0])), tilted):
        cropped = parsing.crop(ramp, square)
        placed = parsing.place(labels, square, height, width)
        for net_x, net_y in [(32, 32), (256, 256), (480, 100), (100, 480)]:
            x, y = square.to_photo() @ (net_x, net_y, 1)
            if 0 <= x < width and 0 <= y < height:
                assert at(placed, (x, y)) == labels[net_y, net_x]
                assert abs(int(cropped[net_y, net_x, 0]) - ramp[int(y), int(x), 0]) <= 2


def test_region_mask_unions_regions() -> None:
    labels = np.array([[Label.HAIR, Label.HAT, Label.SKIN], [Label.UPPER_LIP, OUTSIDE, Label.BACKGROUND]], np.uint8)
    np.testing.assert_array_equal(region_mask(labels, HAIR, parsing.HAT), [[1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(region_mask(labels, LIPS), [[0, 0, 0], [1, 0, 0]])
    assert not region_mask(labels).any()


@pytest.mark.skipif(not REAL.is_dir(), reason="real scans not available")
def test_old_black_and_white_portrait(parser: FaceParser) -> None:
    """A cracked B&W school portrait (the face detector misses it, so a hand-placed box)."""
    rgb = photo(REAL / "old_w_scratch_b.png")
    labels = parser.parse(rgb, common_pb2.Box(x=57, y=61, width=142, height=142))
    assert centre_y(labels, HAIR) < centre_y(labels, BROWS) < centre_y(labels, EYES) < centre_y(labels, NOSE)
    assert centre_y(labels, NOSE) < centre_y(labels, LIPS) < centre_y(labels, NECK) < centre_y(labels, CLOTH)
    # Both ears, one either side of the nose.
    _, cols = np.nonzero(region_mask(labels, parsing.EARS))
    _, nose_cols = np.nonzero(region_mask(labels, NOSE))
    assert cols.min() < nose_cols.min() and cols.max() > nose_cols.max()


@pytest.mark.skipif(not REAL.is_dir(), reason="real scans not available")
def test_old_colour_portrait_with_spectacles(parser: FaceParser) -> None:
    """The child in glasses: the frames are GLASSES, between the brows and the nose tip."""
    rgb = photo(REAL / "old_a.png")
    (face,) = FaceAnalyzer(MODELS / "faces", OPTIONS).analyze(rgb)
    labels = parser.parse(rgb, face)
    points = parsing.landmarks_of(face)
    assert region_mask(labels, GLASSES).sum() > 1000
    assert points[19:25, 1].min() - 20 < centre_y(labels, GLASSES) < points[30, 1]
    assert at(labels, points[30]) in NOSE
    assert centre_y(labels, HAIR) < points[36:48, 1].mean() < centre_y(labels, LIPS)
