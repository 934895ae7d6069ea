"""Never mistake a face's own features for damage: specks found on an eye, a nostril or a mouth are left.

A pupil's highlight, the dark of a nostril or the line between the lips look
like the specks and short scratches the detectors look for, and filling them
wipes out the feature (an eye filled flat is the worst harm a restoration can
do to a portrait). Inside each face's eyes, brows, nose and mouth (from its 68
landmarks, grown a little) only damage that is long and thin is kept: a crack
running across an eye is still repaired, a compact blob on it is not.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from revive.v1 import common_pb2

#: iBUG 300-W landmark ranges of the features protected: brows, nose, eyes, mouth.
FEATURES = (range(17, 22), range(22, 27), range(27, 36), range(36, 42), range(42, 48), range(48, 60))
#: Grow each feature's hull by this share of the face's width (eyelashes, lip edges).
MARGIN = 0.04
#: A damage component this much longer than it is wide is a crack or a scratch, not a feature's detail.
THIN_RATIO = 4.0


def feature_mask(faces: Iterable[common_pb2.Face], shape: tuple[int, int]) -> np.ndarray:
    """uint8 0/1: the protected features of every face with landmarks."""
    mask = np.zeros(shape, np.uint8)
    for face in faces:
        if len(face.landmarks) < 68:
            continue
        points = np.array([(point.x, point.y) for point in face.landmarks], np.float32)
        for feature in FEATURES:
            cv2.fillConvexPoly(mask, cv2.convexHull(points[list(feature)]).astype(np.int32), 1)
        grow = max(1, int(round(MARGIN * face.box.width)))
        mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return mask


def spare_features(damage: np.ndarray, features: np.ndarray) -> np.ndarray:
    """`damage` (uint8, >= 128 damaged) without its compact components inside the features."""
    found = (damage >= 128).astype(np.uint8)
    if not (found & features).any():
        return damage
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    spared = damage.copy()
    for label in np.unique(labels[(found & features) > 0]):
        component = labels == label
        (_, _), (width, height), _ = cv2.minAreaRect(np.argwhere(component)[:, ::-1].astype(np.float32))
        if max(width, height) < THIN_RATIO * max(1.0, min(width, height)):
            spared[component & (features > 0)] = np.minimum(spared[component & (features > 0)], 127)
    return spared
