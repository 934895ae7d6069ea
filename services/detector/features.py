"""Never mistake a face's own features for damage: specks found on an eye, a nostril or a mouth are left, and
so are the frames of spectacles.

A pupil's highlight, the dark of a nostril or the line between the lips look
like the specks and short scratches the detectors look for, and filling them
wipes out the feature (an eye filled flat is the worst harm a restoration can
do to a portrait). Inside each face's eyes, brows, nose and mouth (from its 68
landmarks, grown a little) only damage that is long and thin is kept: a crack
running across an eye is still repaired, a compact blob on it is not.

Spectacles are the opposite case: their rims, bridge and temples are long,
thin, dark lines, exactly what a scratch looks like, and the detectors flag
them (a real scan of a boy in glasses lost a temple and both lower rims).
Face parsing labels the spectacles; a band around their outline is never
damage, while the lenses inside stay open to repair.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import scipy.ndimage
from revive.v1 import common_pb2

#: iBUG 300-W landmark ranges of the features protected: brows, nose, eyes, mouth.
FEATURES = (range(17, 22), range(22, 27), range(27, 36), range(36, 42), range(42, 48), range(48, 60))
#: Grow each feature's hull by this share of the face's width (eyelashes, lip edges).
MARGIN = 0.04
#: A damage component this much longer than it is wide is a crack or a scratch, not a feature's detail.
THIN_RATIO = 4.0
#: Half the width of the band around parsed spectacles that is frame, as a share of the face's width: the
#: parse's outline wanders by a few pixels from the rim it follows.
FRAME_BAND = 0.03
#: Spectacles cover at least this share of their face's box (two lenses); a smaller parse is a crack or a
#: highlight across the brow that the parser took for a rim (seen on a cracked scan), not spectacles.
MIN_SPECTACLES = 0.02


def feature_mask(faces: Iterable[common_pb2.Face], shape: tuple[int, int]) -> np.ndarray:
    """uint8 0/1: the protected features of every face with landmarks."""
    mask = np.zeros(shape, np.uint8)
    for face in faces:
        if len(face.landmarks) < 68:
            continue
        points = np.array([(point.x, point.y) for point in face.landmarks], np.float32)
        for feature in FEATURES:
            cv2.fillConvexPoly(mask, cv2.convexHull(points[list(feature)]).astype(np.int32), 1)
        grow = max(1, round(MARGIN * face.box.width))
        mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return mask


def spare_features(damage: np.ndarray, features: np.ndarray) -> np.ndarray:
    """`damage` (uint8, >= 128 damaged) without its compact components inside the features."""
    found = (damage >= 128).astype(np.uint8)
    if not (found & features).any():
        return damage
    _, labels = cv2.connectedComponents(found, connectivity=8)
    compact = np.zeros(damage.shape, bool)
    for label in np.unique(labels[(found & features) > 0]):
        component = labels == label
        (_, _), (width, height), _ = cv2.minAreaRect(np.argwhere(component)[:, ::-1].astype(np.float32))
        if max(width, height) < THIN_RATIO * max(1.0, min(width, height)):
            compact |= component
    return spare_region(damage, compact & (features > 0))


def spectacle_frames(glasses: np.ndarray, face: common_pb2.Box) -> np.ndarray:
    """uint8 0/1: the band around one face's parsed spectacles (`glasses`, bool HxW), temples and bridge whole."""
    if glasses.sum() < MIN_SPECTACLES * face.width * face.height:
        return np.zeros(glasses.shape, np.uint8)
    grow = max(1, round(FRAME_BAND * face.width))
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    # Only the spectacles' surroundings are worked on: a 4096x4096 photo's full-size morphology costs 0.3 s.
    rows, columns = np.nonzero(glasses)
    top, left = max(0, rows.min() - 2 * grow), max(0, columns.min() - 2 * grow)
    bottom, right = rows.max() + 2 * grow + 1, columns.max() + 2 * grow + 1
    region = glasses[top:bottom, left:right].astype(np.uint8)
    # The parse is patchy and often leaves the lenses out: closed and with its holes filled, it is rims and
    # lenses, whose eroded inside (the lenses) stays open to repair.
    whole = scipy.ndimage.binary_fill_holes(cv2.morphologyEx(region, cv2.MORPH_CLOSE, kernel)).astype(np.uint8)
    frames = np.zeros(glasses.shape, np.uint8)
    frames[top:bottom, left:right] = cv2.dilate(region, kernel) & (1 - cv2.erode(whole, kernel))
    return frames


def spare_region(damage: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`damage` (uint8, >= 128 damaged) with nothing inside `region` counted as damage."""
    return np.where(region > 0, np.minimum(damage, 127), damage).astype(np.uint8)
