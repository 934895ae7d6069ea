"""The photo with its damage filled at full resolution: what the generator builds on, and what the detector
searches for faces a crack may hide. One fill for both, so both see the same photo.

Chosen by width: cracks and scratches by Navier-Stokes diffusion, which joins
the two sides of a thin gap; holes (a torn corner, lost emulsion) from the
face's other side where they tear a face (services/common/face_mirror.py), else from the
photo's own patches (services/common/exemplar.py), which carry its grain and
edges into them where diffusion leaves a smear. The diffusion fill then takes
the grain of the intact pixels around it (`regrain`), so a filled speck or
crack on a grainy scan does not read as a smooth blot or line; specks are
grown a pixel further, past the dark halo a scanner's sharpening rings them with,
and every crack takes in the rim of its own brightness (or darkness) that the
detector left beside it (`with_rims`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common import cancellation
from services.common.exemplar import PATCH, SEARCH, exemplar_fill
from services.common.face_mirror import mirror_fill
from services.common.resize import strips

#: Full-resolution pixels a damage mask is grown by before the fill replaces them.
GROW = 1
#: A speck (a grown damage part of at most SPECK_AREA pixels) is grown SPECK_GROW pixels more: a scan's
#: sharpening rings a bright dust speck with a dark halo that the detector leaves outside the speck, and a
#: fill that starts from the halo turns the speck into a grey blot on the skin.
SPECK_AREA = 120
SPECK_GROW = 1
#: A crack's rim: pixels within RIM of its mask that still stand out from the intact ground around them (the
#: mean over RIM_WINDOW of what lies beyond the rim) the way the crack does, by RIM_CONTRAST levels and
#: RIM_SHARE of the crack's own difference at least. A wide crack's chipped, soft-edged sides outlive a mask a
#: pixel or two narrower, and a fill that starts from them draws a grey ghost of the crack (a real sepia scan's
#: curtain).
RIM = 2
RIM_WINDOW = 15
RIM_CONTRAST = 16.0
RIM_SHARE = 0.3
#: ... and by this many times the intact pixels' own spread about the ground there: texture is no rim.
RIM_TEXTURE = 2.0
#: Columns of the blocks the rims are looked for in (rows: a strip's); blocks without damage are skipped.
RIM_BLOCK = 256
#: Inpainting radius, full-resolution pixels.
INPAINT_RADIUS = 3
#: The damage a fill replaces; fading is restored, not filled.
LOCAL_DAMAGE = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN)
#: The same from the smallest repair to the largest: where kinds meet (shown, or told apart), the later wins.
BY_EXTENT = (common_pb2.STAIN, common_pb2.SCRATCH, common_pb2.TEAR)
#: Damage at least this wide somewhere (full-resolution pixels) is a hole, filled from exemplars.
HOLE_WIDTH = 9
#: Film grain: the photo's high-pass (what a Gaussian of this sigma takes out), measured on intact pixels.
GRAIN_SIGMA = 1.0
#: Every how many intact pixels (along a row) one enters the grain estimate: a 4096x4096 scan stays cheap.
GRAIN_SAMPLE_STEP = 7
#: Window of the local deviation, and the percentile of it over the intact photo that caps the grain.
GRAIN_WINDOW = 7
GRAIN_PERCENTILE = 60
#: Pixels around a filled one whose grain it takes.
GRAIN_REACH = 8
#: Side of the repeated noise tile, and every how many strips the grain ceiling is measured on.
GRAIN_TILE = 256
GRAIN_STRIP_STEP = 3
#: A hole is filled at the scale where it has at most this many pixels: a torn corner of a 4096x4096 scan
#: costs what a small one does, its texture a little softer.
HOLE_PIXELS = 6000


def damage_union(masks: dict[int, np.ndarray], shape: tuple[int, int],
                 kinds: tuple[int, ...] = LOCAL_DAMAGE) -> np.ndarray:
    """The union (max) of the masks of `kinds`, HxW uint8; zeros when none is there."""
    union = np.zeros(shape, np.uint8)
    for kind in kinds:
        if kind in masks:
            np.maximum(union, masks[kind], out=union)
    return union


@dataclass(frozen=True)
class FillRegion:
    """What a fill replaces: every pixel of it (the damage grown, with the cracks' rims: `mask`, uint8 0/1),
    the part diffusion fills for good (`diffused`) and the holes exemplars fill after it."""

    mask: np.ndarray
    diffused: np.ndarray
    holes: list[tuple[slice, slice, np.ndarray]]


def fill_region(rgb: np.ndarray, damage: np.ndarray) -> FillRegion | None:
    """The pixels `fill_damage` replaces for `damage` (mask >= 128) on `rgb`; None when there is no damage.

    Worked out apart from the fill so that what was repaired can be shown as it is: the detector's mask
    grown by GROW (specks by SPECK_GROW more) and the rims beside its cracks."""
    mask = (damage >= 128).astype(np.uint8)
    if not mask.any():
        return None
    mask = grown_for_fill(mask)
    found = holes(mask)
    diffused = mask.copy()
    for rows, cols, inside in found:
        diffused[rows, cols][inside] = 0
    # Cracks, not the corners a grown hole leaves beside its exemplar fill.
    beside_holes = cv2.dilate(mask - diffused, np.ones((3, 3), np.uint8))
    rims = with_rims(rgb, mask, diffused & (1 - beside_holes))
    return FillRegion(mask | rims, diffused | rims, found)


def fill_damage(rgb: np.ndarray, damage: np.ndarray, region: FillRegion | None = None,
                faces: Sequence[common_pb2.Face] = ()) -> np.ndarray:
    """The photo with its damaged pixels (mask >= 128, grown by GROW) filled: Navier-Stokes, then exemplars.

    A full-resolution fill is near-perfect on thin scratches, which the network
    only sees as faint sub-pixel lines at working resolution; holes (`holes`)
    are then filled again from exemplars, since a smooth smear carries none of
    the grain and edges around them. Navier-Stokes over Telea: on real-like damage of
    the training photos it came 0.2 dB closer inside the damage (18.86 against
    18.65 dB, 24 crops; by width, Telea thin and Navier-Stokes wide, 18.81), and
    it fills a 4096x4096 scan's cracks faster (2.5 against 3.3 s). Navier-Stokes over opencv-contrib's
    frequency-selective reconstruction (xphoto FSR, fast): on the repair bench's tuning crops, detected as served,
    FSR everywhere came 15.60 dB inside the damage and FSR only 2 px or more inside it 15.57, against 15.66,
    and the fills took 81 and 70 s against a fraction of a second. `region`: `fill_region`'s for the same
    photo and damage, when the caller has it already. A hole in one of the `faces` (with landmarks) is filled
    from the face's other side first, where that side is intact (`face_mirror`).
    """
    region = region or fill_region(rgb, damage)
    if region is None:
        return rgb
    filled = cv2.inpaint(np.ascontiguousarray(rgb), region.mask, INPAINT_RADIUS, cv2.INPAINT_NS)
    regrain(filled, rgb, region.mask, region.diffused)
    for hole in region.holes:
        cancellation.check()
        if not faces:
            fill_hole(filled, hole)
            continue
        rows, cols, _ = hole
        left = mirror_fill(filled, region.mask, hole, faces)
        if left.any():
            # What the mirror left (all of the hole where it took nothing) is diffused again from its edges as they
            # are now; only its wide parts take exemplars.
            filled[rows, cols] = cv2.inpaint(np.ascontiguousarray(filled[rows, cols]), left.astype(np.uint8),
                                             INPAINT_RADIUS, cv2.INPAINT_NS)
            for part_rows, part_cols, part in holes(left.astype(np.uint8)):
                fill_hole(filled, (_within(rows, part_rows), _within(cols, part_cols), part))
    return filled


def _within(outer: slice, inner: slice) -> slice:
    """`inner` (relative to `outer`'s start) in the photo's coordinates."""
    return slice(outer.start + inner.start, outer.start + inner.stop)


def grown_for_fill(mask: np.ndarray) -> np.ndarray:
    """`mask` (uint8 0/1) grown by GROW, and its specks by SPECK_GROW more."""
    mask = cv2.dilate(mask, np.ones((2 * GROW + 1, 2 * GROW + 1), np.uint8))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    specks = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] <= SPECK_AREA) + 1
    if not len(specks):
        return mask
    speck_pixels = np.isin(labels, specks).astype(np.uint8)
    ring = np.ones((2 * SPECK_GROW + 1, 2 * SPECK_GROW + 1), np.uint8)
    return np.maximum(mask, cv2.dilate(speck_pixels, ring))


def with_rims(rgb: np.ndarray, mask: np.ndarray, thin: np.ndarray) -> np.ndarray:
    """uint8 0/1: the pixels within RIM of the `thin` damage (uint8 0/1, part of `mask`: a hole's edge is the
    exemplar fill's) that stand out from the intact ground the way the masked pixels beside them do: each
    pixel's colour difference from the ground, taken along the crack's own (brighter and paler beside a
    paper-white crack on a sepia print, darker beside a dirt-filled one). Block by block, and only where
    there is damage, so a 4096x4096 scan holds a few small float planes at a time."""
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RIM + 1, 2 * RIM + 1))
    reach = np.maximum(cv2.dilate(thin, band), mask)
    near = (reach > 0) & (mask == 0)
    out = np.zeros_like(mask)
    height, width = mask.shape
    for rows in strips(height):
        for left in range(0, width, RIM_BLOCK):
            block = (rows, slice(left, min(left + RIM_BLOCK, width)))
            if near[block].any():
                out[block] = near[block] & _standing_out(rgb, mask, reach, block)
    return out


def _standing_out(rgb: np.ndarray, mask: np.ndarray, reach: np.ndarray, block: tuple[slice, slice]) -> np.ndarray:
    """bool over `block`: the pixels that differ from the intact ground (what lies beyond `reach`) along the
    difference of the masked pixels beside them, by more than RIM_CONTRAST, RIM_SHARE of that and RIM_TEXTURE
    times the ground's own spread."""
    margin = RIM_WINDOW // 2 + RIM
    around = tuple(slice(max(0, part.start - margin), min(side, part.stop + margin))
                   for part, side in zip(block, mask.shape))
    own = tuple(slice(part.start - wide.start, part.stop - wide.start) for part, wide in zip(block, around))
    window, ring = (RIM_WINDOW, RIM_WINDOW), (2 * RIM + 1, 2 * RIM + 1)
    colour = rgb[around].astype(np.float32)
    intact = (reach[around] == 0).astype(np.float32)
    standing = colour - masked_mean(colour, intact, window)
    # How far the intact pixels there lie from their ground: on gravel or foam a pixel as far off is texture.
    # (A box filter's running sums leave a flat patch's mean square a rounding error below zero.)
    texture = np.sqrt(np.maximum(masked_mean((standing ** 2).sum(axis=2), intact, window), 0.0))[own]
    crack = masked_mean(standing, mask[around].astype(np.float32), ring)[own]
    strength = np.linalg.norm(crack, axis=2)
    along = (standing[own] * crack).sum(axis=2) / np.maximum(strength, 1e-3)
    floor = np.maximum(np.maximum(RIM_CONTRAST, RIM_SHARE * strength), RIM_TEXTURE * texture)
    # With no ground measured there is nothing to stand out from.
    return (cv2.blur(intact, window)[own] > 0.05) & (along > floor)


def masked_mean(values: np.ndarray, weights: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """The mean of `values` (H x W, or H x W x C) over each window, every pixel counted by its weight (H x W,
    0..1): a box filter that leaves out what is masked."""
    total = np.maximum(cv2.blur(weights, window), 1e-3)
    if values.ndim == 3:
        return cv2.blur(values * weights[..., None], window) / total[..., None]
    return cv2.blur(values * weights, window) / total


def regrain(filled: np.ndarray, rgb: np.ndarray, damage: np.ndarray, where: np.ndarray) -> None:
    """Lays grain like the photo's own into the diffusion-filled pixels `where` (uint8 0/1), in place.

    Diffusion leaves a smooth fill: on a grainy scan a filled dust speck or crack reads as a smooth blot
    or line however right its tone. Each filled pixel gets the grain of the intact pixels around it (the
    high-pass's deviation within GRAIN_REACH), at most what the photo's grain is at its strongest
    (`grain_ceiling`), so an edge beside a crack does not pass for grain. The noise is one fixed-seeded
    tile repeated: every candidate and every rerun gets the same fill, and a 4096x4096 scan draws no more
    random numbers than a small one.
    """
    ceiling = grain_ceiling(rgb, damage)
    if ceiling <= 0 or not where.any():
        return
    reach = 2 * GRAIN_REACH + 1
    tile = grain_tile()
    for rows in strips(filled.shape[0]):
        inside = where[rows] > 0
        columns = np.flatnonzero(inside.any(axis=0))
        if not len(columns):
            continue
        # Only the columns the fill touches, with the reach around them.
        cols = slice(max(0, columns[0] - GRAIN_REACH), min(filled.shape[1], columns[-1] + GRAIN_REACH + 1))
        high, margin = high_pass(rgb[:, cols], rows, GRAIN_REACH)
        intact = (damage[margin, cols] == 0).astype(np.float32)
        energy = masked_mean(high * high, intact, (reach, reach))
        own = slice(rows.start - margin.start, rows.stop - margin.start)
        local = np.minimum(np.sqrt(np.maximum(energy[own], 0.0)), ceiling)
        ys = np.arange(rows.start, rows.stop) % GRAIN_TILE
        xs = np.arange(cols.start, cols.stop) % GRAIN_TILE
        grain = tile[np.ix_(ys, xs)] * local
        band = filled[rows, cols]
        mixed = np.clip(band.astype(np.float32) + grain[..., None] + 0.5, 0, 255).astype(np.uint8)
        filled[rows, cols] = np.where(inside[:, cols, None], mixed, band)


@functools.cache
def grain_tile() -> np.ndarray:
    """GRAIN_TILE² of unit-deviation film-like grain (white noise softened to about a pixel), fixed-seeded,
    seamless when repeated."""
    noise = np.random.default_rng(0).standard_normal((GRAIN_TILE, GRAIN_TILE)).astype(np.float32)
    wrapped = cv2.GaussianBlur(np.pad(noise, 4, mode="wrap"), (0, 0), 0.6)[4:-4, 4:-4]
    grain = wrapped / float(wrapped.std())
    grain.flags.writeable = False  # shared by every call
    return grain


def high_pass(rgb: np.ndarray, rows: slice, margin: int) -> tuple[np.ndarray, slice]:
    """The grey high-pass (what a Gaussian of GRAIN_SIGMA takes out) of `rows` and `margin` rows each side."""
    band = slice(max(0, rows.start - margin), min(rgb.shape[0], rows.stop + margin))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[band]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return grey - cv2.GaussianBlur(grey, (0, 0), GRAIN_SIGMA), band


def grain_ceiling(rgb: np.ndarray, damage: np.ndarray) -> float:
    """The most grain the photo has (grey levels): a high percentile of the high-pass's local deviation
    over the intact photo, taken in the quieter part of it, since edges and texture raise it further.
    Every GRAIN_STRIP_STEP-th strip is enough to measure it."""
    samples = []
    for index, rows in enumerate(strips(rgb.shape[0])):
        if index % GRAIN_STRIP_STEP:
            continue
        high, margin = high_pass(rgb, rows, 8)
        own = slice(rows.start - margin.start, rows.stop - margin.start)
        local = np.sqrt(np.maximum(cv2.blur(high * high, (GRAIN_WINDOW, GRAIN_WINDOW))[own], 0.0))
        samples.append(local[damage[rows] == 0][::GRAIN_SAMPLE_STEP])
    values = np.concatenate(samples)
    return float(np.percentile(values, GRAIN_PERCENTILE)) if values.size else 0.0


def holes(mask: np.ndarray) -> list[tuple[slice, slice, np.ndarray]]:
    """The parts of `mask` (uint8 0/1) at least HOLE_WIDTH wide, each as (rows, columns, its mask there).

    A hole is where the damage is wide: the pixels within HOLE_WIDTH / 2 of a point that far from intact
    ground. The cracks running out of a torn corner stay with the diffusion fill."""
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    cores = (inside >= HOLE_WIDTH / 2).astype(np.uint8)
    if not cores.any():
        return []
    wide = cv2.dilate(cores, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (HOLE_WIDTH, HOLE_WIDTH))) & mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(wide, connectivity=8)
    found = []
    for label in range(1, count):
        x, y, w, h = stats[label, :4]
        found.append((slice(y, y + h), slice(x, x + w), labels[y:y + h, x:x + w] == label))
    return found


def fill_hole(filled: np.ndarray, hole: tuple[slice, slice, np.ndarray]) -> None:
    """Fills one hole of `filled` (the photo with every damage filled by diffusion) in place, from exemplars
    around it, at a scale bounded by HOLE_PIXELS."""
    rows, cols, inside = hole
    scale = min(1.0, float(np.sqrt(HOLE_PIXELS / max(1, inside.sum()))))
    margin = int(np.ceil((SEARCH + PATCH) / scale))
    height, width = filled.shape[:2]
    top, bottom = max(0, rows.start - margin), min(height, rows.stop + margin)
    left, right = max(0, cols.start - margin), min(width, cols.stop + margin)
    region = np.zeros((bottom - top, right - left), np.uint8)
    region[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = inside
    start = filled[top:bottom, left:right]
    if scale < 1.0:
        size = (max(PATCH, round(region.shape[1] * scale)), max(PATCH, round(region.shape[0] * scale)))
        small = exemplar_fill(cv2.resize(start, size, interpolation=cv2.INTER_AREA),
                              cv2.resize(region, size, interpolation=cv2.INTER_AREA) > 0)
        patch = cv2.resize(small, region.shape[::-1], interpolation=cv2.INTER_CUBIC)
    else:
        patch = exemplar_fill(start, region > 0)
    filled[top:bottom, left:right] = np.where(region[..., None] > 0, patch, start)
