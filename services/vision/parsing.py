"""FaceParser: which part of a face (skin, brows, eyes, nose, lips, hair, ...) each pixel shows.

The network is BiSeNet trained on CelebAMask-HQ (zllrunning/face-parsing.PyTorch's
`79999_iter.pth`), converted by `training/faces/convert_parsing.py`; origin,
licence (the weights are MIT, the data set's terms are non-commercial) and the
conversion checks are in models/faces/manifest.json under "face_parsing".

CelebAMask-HQ images are CelebA-HQ faces, aligned as Karras et al. aligned them
(the same recipe as FFHQ): a square of side 4 x max(eye-to-eye, 0.9 x
eye-to-mouth), centred a tenth of the way from the eyes' midpoint to the mouth,
rotated so the eyes are level. The face fills roughly the middle half and the
hair, ears and neck fit around it. `framing` builds that square from the 68
landmarks the FaceAnalyzer gives (the dlib layout FFHQ aligned with), or, for a
bare detector box, a square derived from the box with the same average size
and position; the crop is warped to 512 x 512, parsed, and the label map is
warped back onto the photo with nearest-neighbour sampling:

* labels, not logits, go back: bilinear logits then argmax would need 19 float
  planes at photo resolution (300 MB for a 2000-pixel face) for boundaries
  that are at most one network pixel (side / 512 photo pixels) smoother; the
  network's own logits are already a bilinear upsampling of a 64 x 64 map.
* pixels outside the square get `OUTSIDE` (255): the network said nothing there.

Grey photos (HxW, or three equal channels) are parsed as they are: the network
was trained on colour, and on a grey copy of a colour face it agrees with the
colour parse on most pixels (tests/detector/test_face_parsing.py measures it).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.runtime import OnnxModel, RuntimeOptions

MODEL_FILE = Path("faces") / "face_parsing.onnx"
#: The network's input side (CelebAMask-HQ's 512 x 512 masks).
SIDE = 512
#: Label of photo pixels outside the parsed square.
OUTSIDE = 255


class Label(IntEnum):
    """CelebAMask-HQ's classes in the network's channel order.

    LEFT_/RIGHT_ do not tell sides apart: on the faces of tests/data/faces the
    network puts LEFT_EYE on the image's left for some faces and on its right
    for others (the data set's annotations are not consistent). Use the EYES,
    BROWS and EARS regions, and the landmarks where the side matters. Eyes
    behind spectacles are usually labelled GLASSES, not eyes.
    """

    BACKGROUND = 0
    SKIN = 1
    LEFT_BROW = 2
    RIGHT_BROW = 3
    LEFT_EYE = 4
    RIGHT_EYE = 5
    GLASSES = 6
    LEFT_EAR = 7
    RIGHT_EAR = 8
    EARRING = 9
    NOSE = 10
    MOUTH = 11  # the inside of the mouth: teeth, tongue, the gap between the lips
    UPPER_LIP = 12
    LOWER_LIP = 13
    NECK = 14
    NECKLACE = 15
    CLOTH = 16
    HAIR = 17
    HAT = 18


#: Regions: sets of labels that callers ask for together.
BACKGROUND = frozenset({Label.BACKGROUND})
SKIN = frozenset({Label.SKIN})
BROWS = frozenset({Label.LEFT_BROW, Label.RIGHT_BROW})
EYES = frozenset({Label.LEFT_EYE, Label.RIGHT_EYE})
GLASSES = frozenset({Label.GLASSES})
EARS = frozenset({Label.LEFT_EAR, Label.RIGHT_EAR})
EARRINGS = frozenset({Label.EARRING})
NOSE = frozenset({Label.NOSE})
LIPS = frozenset({Label.UPPER_LIP, Label.LOWER_LIP})
MOUTH = frozenset({Label.MOUTH, Label.UPPER_LIP, Label.LOWER_LIP})  # lips and what is between them
NECK = frozenset({Label.NECK})
NECKLACE = frozenset({Label.NECKLACE})
CLOTH = frozenset({Label.CLOTH})
HAIR = frozenset({Label.HAIR})
HAT = frozenset({Label.HAT})
#: The face proper: what a face restorer should touch (not hair, ears, neck or accessories).
FACE = SKIN | BROWS | EYES | NOSE | MOUTH
#: Everything belonging to the head, accessories included.
HEAD = FACE | GLASSES | EARS | EARRINGS | HAIR | HAT

#: Colours for overlays, one per label (RGB).
PALETTE = np.array([
    [0, 0, 0], [255, 200, 160], [120, 60, 20], [150, 80, 30], [0, 120, 255], [0, 200, 255], [200, 200, 0],
    [255, 120, 0], [255, 160, 60], [255, 0, 255], [255, 60, 60], [120, 0, 60], [220, 0, 80], [160, 0, 40],
    [0, 200, 120], [0, 255, 255], [80, 80, 200], [140, 40, 200], [255, 255, 0],
], np.uint8)

#: Karras et al.'s alignment (CelebA-HQ, FFHQ): half the square's side is
#: max(EYE_SPAN x eye-to-eye, MOUTH_SPAN x eye-to-mouth), its centre is the eyes'
#: midpoint moved CENTRE_SHIFT of the way to the mouth.
EYE_SPAN, MOUTH_SPAN, CENTRE_SHIFT = 2.0, 1.8, 0.1
#: A detector box (face-api's TinyFaceDetector) to the same square when there are no
#: landmarks: side = BOX_SIDE x the box's larger side, centre = the box's centre moved
#: down by BOX_SHIFT x its height: the medians of the landmark square over the box on the
#: 11 faces of tests/data/faces (sides 0.72-1.34 x, shifts -0.24 to -0.07 x; the box is generous).
BOX_SIDE, BOX_SHIFT = 1.2, -0.19


@dataclass(frozen=True)
class Framing:
    """The square a face is parsed in: photo coordinates of its top-left corner and its two edge vectors.

    `across` runs along the top edge (left to right of the face), `down` along
    the left edge; both have the square's side as length.
    """

    origin: np.ndarray
    across: np.ndarray
    down: np.ndarray

    @property
    def side(self) -> float:
        return float(np.linalg.norm(self.across))

    def to_crop(self) -> np.ndarray:
        """2x3 affine matrix: photo pixel coordinates -> network input pixel coordinates."""
        return cv2.invertAffineTransform(self.to_photo())

    def to_photo(self) -> np.ndarray:
        """2x3 affine matrix: network input pixel coordinates (0..SIDE) -> photo pixel coordinates."""
        return np.column_stack([self.across / SIDE, self.down / SIDE, self.origin]).astype(np.float64)

    def zoomed(self, factor: float) -> Framing:
        """The square about the same centre with `factor` times the side: the whole head and its long hair."""
        centre = self.origin + (self.across + self.down) / 2
        return Framing(centre - factor * (self.across + self.down) / 2, factor * self.across, factor * self.down)

    def corners(self) -> np.ndarray:
        """4 x 2: top-left, top-right, bottom-right, bottom-left in photo coordinates."""
        o, a, d = self.origin, self.across, self.down
        return np.stack([o, o + a, o + a + d, o + d])


def landmarks_of(face: common_pb2.Face) -> np.ndarray | None:
    """[68, 2] landmark coordinates, or None when the face has none."""
    if len(face.landmarks) != 68:
        return None
    return np.array([[p.x, p.y] for p in face.landmarks], np.float64)


def framing_from_landmarks(landmarks: np.ndarray) -> Framing:
    """Karras et al.'s aligned square from 68 iBUG landmarks (eyes 36-47, mouth corners 48 and 54)."""
    eye_left, eye_right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    eyes = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (landmarks[48] + landmarks[54]) / 2 - eyes
    # The horizontal axis: between the eye line and the perpendicular of eyes-to-mouth.
    across = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    across /= np.linalg.norm(across)
    half = max(EYE_SPAN * np.linalg.norm(eye_to_eye), MOUTH_SPAN * np.linalg.norm(eye_to_mouth))
    down = np.array([-across[1], across[0]])
    centre = eyes + CENTRE_SHIFT * eye_to_mouth
    return Framing(centre - half * (across + down), 2 * half * across, 2 * half * down)


def framing_from_box(box: Sequence[float]) -> Framing:
    """An upright square from a detector box (x, y, width, height), sized and placed like the landmark one."""
    x, y, width, height = (float(v) for v in box)
    side = BOX_SIDE * max(width, height)
    centre = np.array([x + width / 2, y + height / 2 + BOX_SHIFT * height])
    return Framing(centre - side / 2, np.array([side, 0.0]), np.array([0.0, side]))


def framing(face: common_pb2.Face | common_pb2.Box | Sequence[float]) -> Framing:
    """The parsing square of a face: from its landmarks if it has them, else from its box."""
    if isinstance(face, common_pb2.Face):
        landmarks = landmarks_of(face)
        if landmarks is not None:
            return framing_from_landmarks(landmarks)
        face = face.box
    if isinstance(face, common_pb2.Box):
        face = (face.x, face.y, face.width, face.height)
    return framing_from_box(face)


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB from RGB or HxW grey (replicated: the network takes three channels)."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected HxWx3 uint8 RGB or HxW uint8 grey, got {pixels.dtype} {pixels.shape}")
    return pixels


def _bounds(points: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer (top, bottom, left, right) of `points`' bounding box, one pixel of margin, clipped to the photo."""
    low = np.floor(points.min(axis=0)).astype(int) - 1
    high = np.ceil(points.max(axis=0)).astype(int) + 2
    return max(low[1], 0), min(high[1], height), max(low[0], 0), min(high[0], width)


def crop(rgb: np.ndarray, square: Framing) -> np.ndarray:
    """SIDE x SIDE x 3 uint8: the photo inside `square`, resampled (mirrored past the photo's borders).

    Only the part of the photo under the square is touched. When the square is
    larger than SIDE, that part is first shrunk with area averaging (a plain
    bilinear warp would alias hair and film grain); CelebA-HQ's own borders
    were mirrored, so the network has seen reflected margins.
    """
    height, width = rgb.shape[:2]
    top, bottom, left, right = _bounds(square.corners(), height, width)
    if top >= bottom or left >= right:
        raise ValueError("the face's square does not overlap the photo")
    region = rgb[top:bottom, left:right]
    to_region = square.to_photo() - np.array([[0, 0, left], [0, 0, top]], np.float64)
    shrink = SIDE / square.side
    if shrink < 1.0:
        size = (max(1, round(region.shape[1] * shrink)), max(1, round(region.shape[0] * shrink)))
        factors = np.array([size[0] / region.shape[1], size[1] / region.shape[0]])
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        # Region pixel centres map as (i + 0.5) * f - 0.5.
        to_region = to_region * factors[:, None]
        to_region[:, 2] += (factors - 1) / 2
    to_network = cv2.invertAffineTransform(to_region)
    return cv2.warpAffine(region, to_network, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def place(labels: np.ndarray, square: Framing, height: int, width: int) -> np.ndarray:
    """A SIDE x SIDE label map laid onto an height x width photo (nearest neighbour); OUTSIDE elsewhere."""
    out = np.full((height, width), OUTSIDE, np.uint8)
    top, bottom, left, right = _bounds(square.corners(), height, width)
    if top >= bottom or left >= right:
        return out
    # Photo pixel (x, y) of the window -> network pixel; warpAffine wants the dst -> src map.
    to_network = square.to_crop() @ np.array([[1, 0, left], [0, 1, top], [0, 0, 1]], np.float64)
    out[top:bottom, left:right] = cv2.warpAffine(
        labels, to_network, (right - left, bottom - top), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=OUTSIDE)
    return out


def region_mask(labels: np.ndarray, *regions: Iterable[int]) -> np.ndarray:
    """Boolean mask of the pixels whose label is in any of `regions` (e.g. `region_mask(m, HAIR, HAT)`)."""
    wanted = np.zeros(256, bool)
    for region in regions:
        for label in region:
            wanted[int(label)] = True
    return wanted[labels]


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """`rgb` with each labelled pixel tinted by its label's PALETTE colour (background and OUTSIDE untouched)."""
    tinted = as_rgb(rgb).astype(np.float32)
    shown = (labels != OUTSIDE) & (labels != Label.BACKGROUND)
    colours = PALETTE[np.where(shown, labels, 0)].astype(np.float32)
    tinted[shown] = (1 - alpha) * tinted[shown] + alpha * colours[shown]
    return tinted.round().astype(np.uint8)


@functools.cache
def shared_face_parser(models_dir: Path, options: RuntimeOptions) -> FaceParser:
    """One FaceParser per process and models directory."""
    return FaceParser(Path(models_dir) / MODEL_FILE, options)


class FaceParser:
    """The face parsing network in an ONNX Runtime session, and the crops around it."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        self.model = OnnxModel(path, options, "face_parsing")
        #: What really runs the network.
        self.provider = self.model.provider

    def logits(self, crops: np.ndarray) -> np.ndarray:
        """N x SIDE x SIDE x 3 uint8 (or float 0..255) RGB crops -> N x 19 x SIDE x SIDE float32 logits."""
        (logits,) = self.model.run({self.model.input_names[0]: np.ascontiguousarray(crops, np.float32)})
        return logits

    def parse_crops(self, crops: np.ndarray) -> np.ndarray:
        """N x SIDE x SIDE x 3 RGB crops -> N x SIDE x SIDE uint8 labels (the most likely class per pixel)."""
        return self.logits(crops).argmax(axis=1).astype(np.uint8)

    def parse_faces(self, rgb: np.ndarray, faces: Sequence[common_pb2.Face | common_pb2.Box | Sequence[float]],
                    zoom: float = 1.0) -> list[np.ndarray]:
        """One HxW uint8 label map per face, in photo coordinates, OUTSIDE beyond its square (one batch); `zoom`
        widens every square about its centre."""
        rgb = as_rgb(rgb)
        if not faces:
            return []
        squares = [framing(face).zoomed(zoom) for face in faces]
        labels = self.parse_crops(np.stack([crop(rgb, square) for square in squares]))
        return [place(map_, square, *rgb.shape[:2]) for map_, square in zip(labels, squares)]

    def parse(self, rgb: np.ndarray, face: common_pb2.Face | common_pb2.Box | Sequence[float]) -> np.ndarray:
        """HxW uint8 label map (`Label` values, OUTSIDE beyond the face's square) of one face of `rgb`.

        `face` is a FaceAnalyzer face (its landmarks give the aligned square),
        a bare Box, or (x, y, width, height).
        """
        return self.parse_faces(rgb, [face])[0]
