"""Cracks followed across the stretches the network loses: from each end of a found crack, on along its line.

A real crack runs on across a face or a fold of cloth, but there its bright
paper can look like the picture (a pale dash on a dark brow, a faint line over
a lit forehead) and the network's probability drops below even the growth
level (0.05-0.18 on the cracked boy's brow). What still tells the crack is its
line: it continues the found crack's direction, and it is a thin ridge of the
crack's own polarity (brighter paper, or darker dirt), which a face's contours
are not (a brow's edge is a step, not a ridge). So each end of a found crack is
traced forward, a step at a time, in a narrow cone around its direction, taking
the strongest ridge (a top-hat as wide as thin cracks are). A step counts while
the ridge stays above both a share of the crack's own contrast and the photo's
grain, and the network still gives it a little (a railing or a mane's edge in
a crack's line is a ridge too, which the network leaves at nothing); short gaps
are bridged, and the trace is kept when it reaches another crack or has run far
enough on counted steps. Clean photos have no crack to start from, so they stay
clean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: Side of the top-hat's disc: ridges up to about this wide are a crack's (the issue's cracks are 1-5 px).
RIDGE_SIDE = 7
#: A found crack is traced only when its skeleton is at least this long (specks and dust have no direction).
MIN_CRACK = 12
#: A step counts as on the crack only where the network gives it at least this (0..255): a faint stretch of a
#: crack still moves it a little, a picture's own line (a railing, a mane's edge) leaves it at nothing.
PROBABILITY_FLOOR = 4
#: Skeleton pixels walked back from an end to take the crack's direction.
DIRECTION_SPAN = 8
#: Pixels per tracing step, and the turns (degrees) tried at each: a crack kinks, it does not curl.
STEP = 2.0
TURNS = (-36.0, -18.0, 0.0, 18.0, 36.0)
#: How much a turn costs against going straight: a ridge off the line must be this much stronger per degree.
TURN_COST = 0.006
#: Steps in a row below the evidence level after which the trace stops (a crack's paper can be bridged by dirt).
MAX_GAP = 2
#: A trace that joins no crack is kept only when it has this many steps on the ridge.
MIN_STEPS = 4
#: The ridge a step needs: this share of the crack's own contrast near its end...
CONTRAST_SHARE = 0.35
#: ...and above this percentile of the ridge response over the intact photo (its grain and texture).
GRAIN_PERCENTILE = 97.0
#: Pixels from another crack at which a trace has reached it.
NEAR = 2
#: At most this share of the photo's longer side is traced from one end.
MAX_REACH = 0.3
#: At most this many cracks are traced from per photo, the largest first: a 4096x4096 scan of a dense crack
#: network stays within a second.
MAX_CRACKS = 200


@dataclass(frozen=True)
class CrackEnd:
    """Where a found crack stops, the unit direction it was going, its width and contrast there."""

    y: int
    x: int
    dy: float
    dx: float
    width: int
    contrast: float
    bright: bool
    label: int


def thinned(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a bool mask to 1 px wide lines (OpenCV's thinning is in opencv-contrib, which the
    run time does not install); the cracks are a few pixels wide, so it converges in a few passes."""
    image = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for first in (True, False):
            p = image
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            centre = p[1:-1, 1:-1]
            neighbours = sum(n, np.zeros_like(centre, dtype=np.uint8))
            ring = n + n[:1]
            transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.uint8) for i in range(8))
            if first:
                side = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
            else:
                side = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
            remove = (centre == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                centre[remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def ridges(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bright, dark) ridge responses: white and black top-hats of the photo's lightness."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (RIDGE_SIDE, RIDGE_SIDE))
    return (cv2.morphologyEx(luma, cv2.MORPH_TOPHAT, disc).astype(np.float32),
            cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, disc).astype(np.float32))


def crack_ends(labels: np.ndarray, stats: np.ndarray, luma: np.ndarray, bright: np.ndarray,
               dark: np.ndarray) -> list[CrackEnd]:
    """The ends of the MAX_CRACKS largest cracks (`labels` and `stats` of their connected components) long enough
    to have a direction, the longest cracks' first."""
    long_enough = [label for label in range(1, len(stats)) if max(stats[label, 2], stats[label, 3]) >= MIN_CRACK]
    ends: list[tuple[int, CrackEnd]] = []
    for label in sorted(long_enough, key=lambda label: -stats[label, 4])[:MAX_CRACKS]:
        x, y, w, h, _ = stats[label]
        window = (slice(y, y + h), slice(x, x + w))
        own = labels[window] == label
        skeleton = thinned(own)
        length = int(skeleton.sum())
        if length < MIN_CRACK:
            continue
        # A pixel of the skeleton lies d from the crack's edge, so the crack there is 2d - 1 wide.
        depth = cv2.distanceTransform(np.pad(own, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        ring = cv2.dilate(own.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~own
        is_bright = bool(luma[window][own].mean() >= luma[window][ring].mean()) if ring.any() else True
        response = (bright if is_bright else dark)[window]
        padded = np.pad(skeleton, 1).astype(np.uint8)
        degree = cv2.filter2D(padded, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT)[1:-1, 1:-1] - 1
        for ey, ex in zip(*np.nonzero(skeleton & (degree == 1)), strict=True):
            path = _walk_back(skeleton, int(ey), int(ex))
            if len(path) < DIRECTION_SPAN // 2:
                continue
            by, bx = path[-1]
            norm = math.hypot(ey - by, ex - bx)
            contrast = float(np.median([response[py, px] for py, px in path]))
            width = max(1, round(2 * float(np.median([depth[py, px] for py, px in path])) - 1))
            ends.append((length, CrackEnd(int(ey + y), int(ex + x), (ey - by) / norm, (ex - bx) / norm, width,
                                          contrast, is_bright, label)))
    ends.sort(key=lambda item: -item[0])
    return [end for _, end in ends]


def _walk_back(skeleton: np.ndarray, y: int, x: int) -> list[tuple[int, int]]:
    """Skeleton pixels from an end back along its line, up to DIRECTION_SPAN, stopping at a junction."""
    path, seen = [(y, x)], {(y, x)}
    height, width = skeleton.shape
    while len(path) <= DIRECTION_SPAN:
        cy, cx = path[-1]
        step = [(cy + dy, cx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if (dy or dx) and 0 <= cy + dy < height and 0 <= cx + dx < width
                and skeleton[cy + dy, cx + dx] and (cy + dy, cx + dx) not in seen]
        if len(step) != 1:
            break
        path.append(step[0])
        seen.add(step[0])
    return path


def trace(end: CrackEnd, response: np.ndarray, probability: np.ndarray, claimed: np.ndarray, level: float,
          reach: int) -> list[tuple[float, float]]:
    """The points of `end`'s continuation worth keeping (empty when none): stepped along the strongest ridge of
    `response` within TURNS of the current direction, while it stays above `level` (and the network's
    `probability` above PROBABILITY_FLOOR) with at most MAX_GAP weak steps in a row; all of it when it reaches
    another crack, else up to its last strong step, if it had MIN_STEPS of them. `claimed` labels every crack's
    surroundings (NEAR pixels), traces included."""
    height, width = response.shape
    y, x, dy, dx = float(end.y), float(end.x), end.dy, end.dx
    points: list[tuple[float, float]] = []
    strong, last_strong, gap = 0, 0, 0
    for _ in range(int(reach / STEP)):
        best: tuple[float, float, float, float, float] | None = None
        for turn in TURNS:
            angle = math.radians(turn)
            ty = dy * math.cos(angle) + dx * math.sin(angle)
            tx = dx * math.cos(angle) - dy * math.sin(angle)
            qy, qx = y + STEP * ty, x + STEP * tx
            iy, ix = round(qy), round(qx)
            if not (0 <= iy < height and 0 <= ix < width):
                continue
            score = float(response[iy, ix]) * (1.0 - TURN_COST * abs(turn))
            if best is None or score > best[0]:
                best = (score, qy, qx, ty, tx)
        if best is None:
            break
        _, y, x, ty, tx = best
        dy, dx = 0.7 * dy + 0.3 * ty, 0.7 * dx + 0.3 * tx
        norm = math.hypot(dy, dx)
        dy, dx = dy / norm, dx / norm
        points.append((y, x))
        other = claimed[round(y), round(x)]
        if other and other != end.label:
            return points
        if response[round(y), round(x)] >= level and probability[round(y), round(x)] >= PROBABILITY_FLOOR:
            strong, last_strong, gap = strong + 1, len(points), 0
        else:
            gap += 1
            if gap > MAX_GAP:
                break
    return points[:last_strong] if strong >= MIN_STEPS else []


def continued(mask: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """The scratch mask (uint8, >= 128 = damage) with every found crack's lost stretches traced on and marked."""
    cracks = mask >= 128
    if not cracks.any():
        return mask
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    bright, dark = ridges(luma)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(cracks.astype(np.uint8), connectivity=8)
    # Where each crack lies, a few pixels wide: a trace that comes alongside another crack has reached it.
    claimed = cv2.dilate(labels.astype(np.float32), np.ones((1 + 2 * NEAR, 1 + 2 * NEAR), np.uint8))
    # The grain's level over a sixteenth of the intact pixels (a regular grid): enough, and fast on a large scan.
    intact = ~cv2.dilate(cracks.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)[::4, ::4]
    grain = {polarity: float(np.percentile(response[::4, ::4][intact], GRAIN_PERCENTILE)) if intact.any() else 0.0
             for polarity, response in ((True, bright), (False, dark))}
    reach = max(MIN_CRACK, round(MAX_REACH * max(mask.shape)))
    support = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # a step a pixel off the network's line still counts
    traced = np.zeros(mask.shape, np.uint8)
    for end in crack_ends(labels, stats, luma, bright, dark):
        level = max(CONTRAST_SHARE * end.contrast, grain[end.bright])
        points = trace(end, bright if end.bright else dark, support, claimed, level, reach)
        if points:
            line = np.round(np.array([(end.x, end.y)] + [(x, y) for y, x in points])).astype(np.int32)
            cv2.polylines(traced, [line], False, 1, thickness=end.width)
            # The trace is the crack's now: the crack it reached, traced back from its own end, joins at once.
            cv2.polylines(claimed, [line], False, end.label, thickness=end.width + 2 * NEAR)
    return np.where(traced.astype(bool), np.maximum(mask, 128), mask).astype(np.uint8)
