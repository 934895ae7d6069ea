"""Turning network outputs into photo coordinates, and the face crops between stages.

Pure numpy, one function per step of face-api's pipeline (TinyYolov2Base.extractBoxes,
ops/nonMaxSuppression, FaceLandmark68NetBase.postProcess, FaceLandmarks.align*),
so each can be checked on its own. Boxes are float (x, y, width, height) arrays.
"""

from __future__ import annotations

import numpy as np

from services.vision.faces.resampling import js_round

#: TinyFaceDetector's anchor boxes, in grid cells (src/tinyFaceDetector/const.ts).
ANCHORS = np.array([
    [1.603231, 2.094468],
    [6.041143, 7.080126],
    [2.882459, 3.518061],
    [4.266906, 5.178857],
    [9.041765, 10.66308],
], np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_grid(grid: np.ndarray, image_width: int, image_height: int, input_size: int,
                score_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """YOLO cells [S, S, anchors * 5] -> (boxes in photo pixels [K, 4], scores [K]) above the threshold.

    The photo was padded at the right/bottom to a square, so a box relative to the
    square is rescaled by the share of the square the photo fills; face-api rounds
    that share to whole input pixels, and so does this.
    """
    cells = grid.shape[0]
    raw = grid.reshape(cells, cells, len(ANCHORS), 5).astype(np.float64)
    scores = _sigmoid(raw[..., 4])
    scale = input_size / max(image_width, image_height)
    correction_x = input_size / js_round(image_width * scale)
    correction_y = input_size / js_round(image_height * scale)
    rows, cols, anchors = np.nonzero(scores > score_threshold)
    cell = raw[rows, cols, anchors]
    width = np.exp(cell[:, 2]) * ANCHORS[anchors, 0] / cells * correction_x
    height = np.exp(cell[:, 3]) * ANCHORS[anchors, 1] / cells * correction_y
    center_x = (cols + _sigmoid(cell[:, 0])) / cells * correction_x
    center_y = (rows + _sigmoid(cell[:, 1])) / cells * correction_y
    relative = np.stack([center_x - width / 2, center_y - height / 2, width, height], axis=1)
    return relative * [image_width, image_height, image_width, image_height], scores[rows, cols, anchors]


#: Two face boxes overlapping by this much (IoU) or more are the same face: one found twice, by a second look
#: or at a lower score.
SAME_FACE = 0.3


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x, y, w, h) box with each of `others`."""
    left = np.maximum(box[0], others[:, 0])
    top = np.maximum(box[1], others[:, 1])
    right = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    bottom = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    return inter / (box[2] * box[3] + others[:, 2] * others[:, 3] - inter)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS, best score first; indices of the boxes kept, in that order."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if order:
            overlaps = iou(boxes[best], boxes[order])
            order = [index for index, overlap in zip(order, overlaps) if overlap <= iou_threshold]
    return keep


def landmarks_in_crop(raw: np.ndarray, crop_width: int, crop_height: int) -> np.ndarray:
    """The landmark net's 136 outputs (relative to its centred, padded square) -> [68, 2] crop pixels."""
    points = raw.reshape(68, 2).astype(np.float64)
    side = max(crop_width, crop_height)
    # The padding is half the size difference on the short side; in relative units of the square:
    pad = np.array([side - crop_width, side - crop_height], np.float64) / 2
    return points * side - pad


def landmark_box(landmarks: np.ndarray, padding: float = 0.2) -> np.ndarray:
    """FaceLandmarks.alignMinBbox: the landmarks' bounding box grown by `padding` of its size."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    size = high - low
    return np.concatenate([low - size * padding / 2, size * (1 + padding)])


def dlib_box(landmarks: np.ndarray) -> np.ndarray:
    """FaceLandmarks.alignDlib: the square dlib's face recogniser was trained on.

    Its side is the mean eye-to-mouth distance / 0.45, placed so the eyes-and-mouth
    centroid sits at (0.5, 0.43) of it.
    """
    centers = np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0), landmarks[48:68].mean(axis=0)])
    eye_to_mouth = np.linalg.norm(centers[2] - centers[:2], axis=1).mean()
    size = np.floor(eye_to_mouth / 0.45)
    reference = centers.mean(axis=0)
    x = np.floor(max(0.0, reference[0] - 0.5 * size))
    y = np.floor(max(0.0, reference[1] - 0.43 * size))
    return np.array([x, y, size, size])
