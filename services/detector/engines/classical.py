"""A classical damage detector: the baseline the learned detector must beat, and the default.

It looks for what old-photo damage does to the luminance, without learning:
- scratches and specks are thin or small structures that a morphological
  top-hat (bright) or black-hat (dark) isolates, standing well above the
  residual of their neighbourhood; long thin components are scratches,
  small compact ones spots;
- tears and missing areas are large, even, paper-pale regions reaching the
  photo's edge;
- fading is a compressed tonal range with a lifted black level;
- a photo is black-and-white (sepia included) when its chroma hardly varies.
Real texture (hair, eyelashes, fabric) is thin and small too; the local
test keeps it out where it is dense, at the price of missing damage that
crosses such texture.
"""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.config import ServiceConfig
from services.common.metrics import timed_inference
from services.common.resize import shrink_to
from services.detector.engine import Detection
from services.detector.tone import grayscale_score

#: Side at which whole-photo statistics are computed; enough to be stable.
STATS_SIDE = 512
#: Structuring element wider than any scratch or speck, narrower than real shapes.
HAT_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
#: Smallest luminance departure (of 255) taken as damage, whatever the noise.
MIN_RESIDUAL = 28
#: Window and ratio of the local-texture test: a candidate must stand this far above its surroundings' mean residual.
TEXTURE_WINDOW = (31, 31)
TEXTURE_RATIO = 4.0
#: Components longer than this (pixels) and at least this elongated are scratches.
SCRATCH_MIN_LENGTH = 20
SCRATCH_MIN_ELONGATION = 4.0
#: Compact components up to this many pixels are spots and specks.
SPOT_MAX_AREA = 400
#: Paper-bright flat regions larger than this fraction of the photo are tears.
TEAR_MIN_FRACTION = 0.002
#: Exposed paper: pale, even (grain and scan noise allowed) and at most yellowed.
PAPER_MIN_LUMA = 185
PAPER_MAX_VARIANCE = 250.0
PAPER_MAX_SATURATION = 90
#: Largest tone spread (of 255) across one piece of exposed paper.
PAPER_MAX_TONE_SPREAD = 5.0


def _downscaled(image: np.ndarray) -> np.ndarray:
    return shrink_to(image, STATS_SIDE)


def fading(luma: np.ndarray) -> tuple[float, np.ndarray]:
    """Whole-photo fading score and a soft per-pixel mask of washed-out areas."""
    small = _downscaled(luma)
    low, high = np.percentile(small, (1, 99))
    contrast_loss = (0.8 - (high - low) / 255.0) / 0.5
    lifted_black = (low - 20.0) / 80.0
    score = float(np.clip(max(contrast_loss, lifted_black), 0.0, 1.0))
    # Local black level: areas whose darkest tones are lifted look washed out.
    floor = cv2.erode(small, np.ones((15, 15), np.uint8)).astype(np.float32)
    local = np.clip((floor - 60.0) / 60.0, 0.0, 1.0) * score
    mask = cv2.resize((local * 255).astype(np.uint8), luma.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return score, mask


def residual_damage(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of scratches and of spots: thin or small bright/dark structures."""
    residual = np.maximum(
        cv2.morphologyEx(luma, cv2.MORPH_TOPHAT, HAT_KERNEL), cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, HAT_KERNEL)
    )
    noise = float(np.median(_downscaled(residual))) * 1.4826 * 6
    # Damage is sparse: where the neighbourhood itself is busy (hair, fabric, foliage)
    # a thin structure is texture, and a speck there would be invisible anyway.
    busy = cv2.blur(residual.astype(np.float32), TEXTURE_WINDOW) * TEXTURE_RATIO
    candidates = ((residual > max(MIN_RESIDUAL, noise)) & (residual > busy)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    widths, heights, areas = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    length = np.maximum(widths, heights).astype(np.float32)
    # Thickness of a thin stroke is area / length; elongation compares the two.
    elongation = length * length / np.maximum(areas, 1)
    is_scratch = (length >= SCRATCH_MIN_LENGTH) & (elongation >= SCRATCH_MIN_ELONGATION)
    is_spot = ~is_scratch & (areas <= SPOT_MAX_AREA) & (areas >= 2)
    is_scratch[0] = is_spot[0] = False  # label 0 is the background
    grow = np.ones((3, 3), np.uint8)
    scratches = cv2.dilate(is_scratch[labels].astype(np.uint8) * 255, grow)
    spots = cv2.dilate(is_spot[labels].astype(np.uint8) * 255, grow)
    return scratches, spots


def _tone_spread(luma: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Per component, the standard deviation of the smoothed tone inside it (its rim left out)."""
    smooth = cv2.GaussianBlur(luma.astype(np.float32), (0, 0), 2.0)
    inner = cv2.erode((labels > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    which, values = labels[inner], smooth[inner]
    pixels = np.bincount(which, minlength=count).astype(np.float64)
    mean = np.bincount(which, values, minlength=count) / np.maximum(pixels, 1)
    square = np.bincount(which, values.astype(np.float64) ** 2, minlength=count) / np.maximum(pixels, 1)
    spread = np.sqrt(np.maximum(square - mean**2, 0.0))
    return np.where(pixels > 0, spread, np.inf)


def tears(rgb: np.ndarray, luma: np.ndarray) -> np.ndarray:
    """Large, even, pale, low-saturation regions that reach the photo's edge: missing paper.

    Exposed paper is grainy and yellowed after scanning, so flatness and
    saturation are loose; what tells it from a white shirt is where it is.
    Paper goes missing from corners and edges (an inner hole is left to
    the learned engine), and a piece of blank paper is one even tone from
    side to side, where a pale sky or shirt is shaded.
    """
    flat_window = (9, 9)
    mean = cv2.blur(luma.astype(np.float32), flat_window)
    variance = cv2.blur(luma.astype(np.float32) ** 2, flat_window) - mean**2
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    paper = ((luma >= PAPER_MIN_LUMA) & (variance < PAPER_MAX_VARIANCE) & (saturation < PAPER_MAX_SATURATION))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(paper.astype(np.uint8), connectivity=4)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    height, width = luma.shape
    at_edge = (left == 0) | (top == 0) | (right == width) | (bottom == height)
    large = (stats[:, cv2.CC_STAT_AREA] >= TEAR_MIN_FRACTION * luma.size) & at_edge
    large[0] = False
    large &= _tone_spread(luma, labels, count) <= PAPER_MAX_TONE_SPREAD
    mask = large[labels].astype(np.uint8) * 255
    return cv2.dilate(mask, np.ones((5, 5), np.uint8)) if large.any() else mask


class ClassicalDetector:
    name = "classical"
    provider = "opencv"

    def __init__(self, config: ServiceConfig | None = None) -> None:
        """Needs no model; `config` is accepted to match every engine factory."""

    def warm_up(self) -> None:
        self.detect(np.full((64, 64, 3), 128, np.uint8))

    def detect(self, rgb: np.ndarray, analyze_faces: bool = False) -> Detection:
        """Faces are not analysed by the classical engine; `analyze_faces` is ignored."""
        with timed_inference(self.name, self.provider):
            luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            scratches, spots = residual_damage(luma)
            torn = tears(rgb, luma)
            fading_score, faded = fading(luma)
            # A pixel inside a tear is reported as the tear only.
            scratches[torn > 0] = 0
            spots[torn > 0] = 0
            return Detection(
                masks={
                    common_pb2.SCRATCH: scratches,
                    common_pb2.TEAR: torn,
                    common_pb2.STAIN: spots,
                    common_pb2.FADING: faded,
                },
                fading_score=fading_score,
                grayscale_score=grayscale_score(rgb),
            )
