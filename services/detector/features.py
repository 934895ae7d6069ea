"""Never mistake a face's own features for damage: specks found on an eye, a nostril or a mouth are left, and
so are the frames of spectacles.

A pupil's highlight, the dark of a nostril or the line between the lips look
like the specks and short scratches the detectors look for, and filling them
wipes out the feature (an eye filled flat is the worst harm a restoration can
do to a portrait). Inside each face's eyes, brows, nose and mouth (from its 68
landmarks, grown a little) only damage that is long and thin is kept: a crack
running across an eye is still repaired, a compact blob on it is not, unless
the print is black-and-white (or toned) and the blob is not of the print's
tint: a pupil, a nostril and the lips of such a print are, foxing and rust
spots are not (they stayed on a portrait's lip and cheek).

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

from services.detector.tone import lightness_bin, tint_by_lightness

#: iBUG 300-W landmark ranges of the features protected: brows, nose, eyes, mouth.
FEATURES = (range(17, 22), range(22, 27), range(27, 36), range(36, 42), range(42, 48), range(48, 60))
#: Grow each feature's hull by this share of the face's width (eyelashes, lip edges).
MARGIN = 0.04
#: A piece of damage this much longer than it is wide is a crack or a scratch, not a feature's detail.
THIN_RATIO = 4.0
#: Pixels around the features in which the width of damage crossing their outline is measured.
WIDTH_ROOM = 16
#: Half the width of the band around parsed spectacles that is frame, as a share of the face's width: the
#: parse's outline wanders by a few pixels from the rim it follows.
FRAME_BAND = 0.03
#: Spectacles cover at least this share of their face's box (two lenses); a smaller parse is a crack or a
#: highlight across the brow that the parser took for a rim (seen on a cracked scan), not spectacles.
MIN_SPECTACLES = 0.02
#: A compact piece on a black-and-white print whose mean colour lies this far (Cr/Cb levels) from the print's tint
#: at its lightness is a spot on the print, not a feature. Synthetic foxing (rust brown, 40-85% opaque) lies 10
#: or more from a grey print's tint; a scan's chroma noise and its colour fringes at a pupil's edge average to
#: a level or two over a piece.
OFF_TINT = 6.0


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


def spare_features(damage: np.ndarray, features: np.ndarray, print_rgb: np.ndarray | None = None) -> np.ndarray:
    """`damage` (uint8, >= 128 damaged) without its compact pieces inside the features. `print_rgb`: the photo,
    when it is a black-and-white (or toned) print: compact pieces off its tint (`off_tint`) are then kept.

    Each piece of damage inside the features is judged on its own: its length (the long side of its smallest
    enclosing rectangle) against its width (its thickest point, from the distance to the intact pixels
    around it, measured on all the damage near the features, so a crack cut by their outline keeps its
    width). Judged as a whole connected component, a crack network spanning the photo was as wide as it was
    long, so "compact", and the stretch of it crossing a brow was left (a cracked boy's scan).
    """
    found = (damage >= 128).astype(np.uint8)
    inside = found & features
    if not inside.any():
        return damage
    # Only the features' surroundings are worked on (a 4096x4096 photo's full-size distance transform costs
    # a fifth of a second), with room around them for the width of what crosses their outline.
    rows, columns = np.nonzero(features)
    top, left = max(0, rows.min() - WIDTH_ROOM), max(0, columns.min() - WIDTH_ROOM)
    area = (slice(top, rows.max() + WIDTH_ROOM + 1), slice(left, columns.max() + WIDTH_ROOM + 1))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside[area], connectivity=8)
    # The width of the damage at each pixel: 1 on a 1 px line, 3 on a 3 px crack, 7 on a speck of radius 3.
    width = 2.0 * cv2.distanceTransform(found[area], cv2.DIST_L2, 5) - 1.0
    ycc = None if print_rgb is None else cv2.cvtColor(print_rgb[area], cv2.COLOR_RGB2YCrCb).astype(np.float32)
    tint = None if ycc is None else tint_by_lightness(ycc[found[area] == 0])
    compact = np.zeros(damage.shape, bool)
    for label in range(1, count):
        x, y, box_width, box_height, _ = stats[label]
        window = (slice(y, y + box_height), slice(x, x + box_width))
        piece = labels[window] == label
        thickest = max(1.0, float(width[window][piece].max()))
        (_, _), sides, _ = cv2.minAreaRect(np.argwhere(piece)[:, ::-1].astype(np.float32))
        if max(max(sides), 1.0) >= THIN_RATIO * thickest:
            continue
        if tint is not None and off_tint(ycc[window][piece], tint) >= OFF_TINT:
            continue
        compact[top + y:top + y + box_height, left + x:left + x + box_width] |= piece
    return spare_region(damage, compact)


def off_tint(piece: np.ndarray, tint: np.ndarray) -> float:
    """How far (Cr/Cb levels) the mean colour of `piece` (N x 3 YCrCb) lies from the print's `tint`
    (tone.tint_by_lightness) at the piece's mean lightness."""
    mean = piece.mean(axis=0)
    return float(np.hypot(*(mean[1:] - tint[lightness_bin(mean[0])])))


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
