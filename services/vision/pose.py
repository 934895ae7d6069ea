"""PoseLandmarker: where a person's arms, hands and legs are, from MediaPipe's BlazePose full landmark model.

Why: in grey, a bare arm and a pale sleeve can have the same tone, and colour
chosen by tone alone dyed bare arms like clothes (teal and pink arms on the
tuning group photos) and left hands white. The skeleton says where limbs are,
so the colouriser can look for bare skin there (colourize.split_body).

The network (converted by training/person/convert.py; origin, licence and
checks in models/pose/manifest.json) regresses 33 body points from a square
crop framed on one person. MediaPipe frames it with a body detector
(pose_detection, whose file holds sparse weights the converter does not
replay); Revive already knows where each face is, and a body hangs below its
face, so the crop is framed on the face (`frame`): FRAME_SIDE face heights
wide, centred FRAME_BELOW face heights below the face's centre, upright,
zeros beyond the photo's edges (MediaPipe's BORDER_ZERO). It holds a
standing figure whole and a sitter's hands. In a crowded group the crop holds
neighbours too, and the points of one may land on another: the limbs are
where to look for skin, never skin by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.common.runtime import OnnxModel, RuntimeOptions

MODEL_FILE = Path("pose") / "pose_landmark_full.onnx"
#: The network's input side.
SIDE = 256
#: The crop framed on a face: its side, and its centre below the face's centre, in face heights.
FRAME_SIDE, FRAME_BELOW = 9.0, 3.0
#: A point counts when the network's visibility for it (a probability) reaches this, and a crop only when its
#: person probability does.
VISIBLE, PRESENT = 0.5, 0.5
#: BlazePose's point numbers.
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 11, 12, 13, 14, 15, 16
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
#: Each wrist's hand points: pinky, index and thumb.
HANDS = {LEFT_WRIST: (17, 19, 21), RIGHT_WRIST: (18, 20, 22)}
#: Limb segments, their half-widths in widths of the analyser's face box (which holds some hair too: on the test
#: sitters a bare upper arm is about 0.3 of a box wide; wider here, since the points are a regression's), and the
#: point that must be seen inside the photo for the limb to count: an arm ends in a hand, and an arm cut by the
#: frame of a half-length portrait is as likely a sleeve, whose cuff the skin test would need to see.
SEGMENTS = (
    ((LEFT_SHOULDER, LEFT_ELBOW), 0.25, LEFT_WRIST), ((RIGHT_SHOULDER, RIGHT_ELBOW), 0.25, RIGHT_WRIST),
    ((LEFT_ELBOW, LEFT_WRIST), 0.22, LEFT_WRIST), ((RIGHT_ELBOW, RIGHT_WRIST), 0.22, RIGHT_WRIST),
    ((LEFT_HIP, LEFT_KNEE), 0.35, LEFT_KNEE), ((RIGHT_HIP, RIGHT_KNEE), 0.35, RIGHT_KNEE),
    ((LEFT_KNEE, LEFT_ANKLE), 0.25, LEFT_KNEE), ((RIGHT_KNEE, RIGHT_ANKLE), 0.25, RIGHT_KNEE),
)
#: A hand: the hull of its wrist and finger points, grown by this many face-box widths.
HAND_MARGIN = 0.15


@dataclass(frozen=True)
class Pose:
    """One person's body points in photo pixels (33 x 2, x then y), how visible each is (33, 0..1), and the width
    of the face the crop was framed on (limbs are sized by it)."""

    points: np.ndarray
    visibility: np.ndarray
    face_width: float

    def seen(self, *indices: int) -> bool:
        return bool((self.visibility[list(indices)] >= VISIBLE).all())


def frame(box: np.ndarray) -> np.ndarray:
    """2 x 3 affine map from photo pixels to the network's SIDE x SIDE crop framed on the face `box` (x, y, width,
    height)."""
    x, y, width, height = (float(value) for value in box)
    scale = SIDE / (FRAME_SIDE * height)
    centre_x, centre_y = x + width / 2, y + height / 2 + FRAME_BELOW * height
    return np.array([[scale, 0.0, SIDE / 2 - centre_x * scale], [0.0, scale, SIDE / 2 - centre_y * scale]])


class PoseLandmarker:
    """The BlazePose full landmark network in an ONNX Runtime session."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        self.model = OnnxModel(path, options, "pose_landmarks")
        self.provider = self.model.provider

    def poses(self, rgb: np.ndarray, boxes: list[np.ndarray]) -> list[Pose]:
        """The pose of the person below each face `box` in `rgb` (uint8 RGB), one batch for all; a crop the
        network finds no person in gives none, and so does an empty box (a caller's report may hold one)."""
        boxes = [box for box in boxes if box[2] > 0 and box[3] > 0]
        if not boxes:
            return []
        maps = [frame(box) for box in boxes]
        crops = np.stack([cv2.warpAffine(rgb, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT) for matrix in maps])
        batch = (crops.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)
        landmarks, present, _ = self.model.run({self.model.input_names[0]: batch})
        poses = []
        for points, probability, matrix, box in zip(landmarks, present[:, 0], maps, boxes, strict=True):
            if probability < PRESENT:
                continue
            points = points.reshape(-1, 5)[:33]
            back = cv2.invertAffineTransform(matrix)
            photo_points = points[:, :2] @ back[:, :2].T + back[:, 2]
            visibility = 1.0 / (1.0 + np.exp(-points[:, 3]))
            poses.append(Pose(photo_points, visibility, float(box[2])))
        return poses


def limb_mask(poses: list[Pose], size: tuple[int, int], scale: float) -> np.ndarray:
    """`size` (h, w) bool: the arms, hands and legs of `poses` (photo pixels) drawn `scale` times as large, each
    limb where both its ends are visible and its anchor (SEGMENTS) lies inside."""
    mask = np.zeros(size, np.uint8)
    for pose in poses:
        points = pose.points * scale
        inside = (points >= 0).all(axis=1) & (points[:, 0] < size[1]) & (points[:, 1] < size[0])
        for (start, end), half_width, anchor in SEGMENTS:
            if pose.seen(start, end, anchor) and inside[anchor]:
                thickness = max(1, round(2 * half_width * pose.face_width * scale))
                cv2.line(mask, tuple(np.rint(points[start]).astype(int)), tuple(np.rint(points[end]).astype(int)),
                         1, thickness)
        for wrist, fingers in HANDS.items():
            if pose.seen(wrist, *fingers) and inside[wrist]:
                hull = cv2.convexHull(np.rint(points[[wrist, *fingers]]).astype(np.int32))
                cv2.fillConvexPoly(mask, hull, 1)
                margin = max(1, round(2 * HAND_MARGIN * pose.face_width * scale))
                cv2.polylines(mask, [hull], True, 1, margin)
    return mask.astype(bool)
