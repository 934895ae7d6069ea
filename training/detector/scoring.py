"""Pixel-level scores of damage masks: IoU, precision, recall and F1 per type, and false alarms.

Counts are summed over a whole evaluation set before dividing, so a sample
with one tiny scratch does not weigh as much as one with a large tear
(micro-averaging, as in the usual segmentation benchmarks). A mask value of
128 or more counts as damaged, the same threshold DamageReport coverage uses.

For thin damage a strict pixel match punishes a crack found one pixel to the
side as a miss and a false alarm at once, though the repair it drives is the
same. Crack-detection benchmarks (CrackForest, DeepCrack) therefore score with
a tolerance: a found pixel is right when a true one is within `tolerance`
pixels, and a true pixel is found when a found one is that close. `Counts`
takes the tolerance; 0 is the strict score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from services.detector.engine import DAMAGE_TYPES

THRESHOLD = 128


def _near(mask: np.ndarray, tolerance: int) -> np.ndarray:
    if not tolerance:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


@dataclass
class Counts:
    tolerance: int = 0
    #: Found pixels with a true one within the tolerance, and all found pixels.
    found_right: int = 0
    found: int = 0
    #: True pixels with a found one within the tolerance, and all true pixels.
    real_found: int = 0
    real: int = 0
    #: Strict counts, for IoU.
    overlap: int = 0
    union: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        hit, real = predicted >= THRESHOLD, truth >= THRESHOLD
        self.found_right += int(np.count_nonzero(hit & _near(real, self.tolerance)))
        self.found += int(np.count_nonzero(hit))
        self.real_found += int(np.count_nonzero(real & _near(hit, self.tolerance)))
        self.real += int(np.count_nonzero(real))
        self.overlap += int(np.count_nonzero(hit & real))
        self.union += int(np.count_nonzero(hit | real))

    @property
    def iou(self) -> float:
        return self.overlap / self.union if self.union else 1.0

    @property
    def precision(self) -> float:
        return self.found_right / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.real_found / self.real if self.real else 1.0

    @property
    def f1(self) -> float:
        if not self.found and not self.real:
            return 1.0
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass
class SegmentationScore:
    """Per-type counts over an evaluation set."""

    tolerance: int = 0
    counts: dict[int, Counts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {kind: Counts(self.tolerance) for kind in DAMAGE_TYPES}

    def add(self, predicted: dict[int, np.ndarray], truth: dict[int, np.ndarray]) -> None:
        for kind in DAMAGE_TYPES:
            self.counts[kind].add(predicted[kind], truth[kind])

    def mean_f1(self, kinds: tuple[int, ...] = DAMAGE_TYPES) -> float:
        return float(np.mean([self.counts[kind].f1 for kind in kinds]))


def flagged_fraction(masks: dict[int, np.ndarray]) -> float:
    """Share of pixels reported as damage of any type: on a clean photo, the false-alarm rate."""
    union = np.zeros(next(iter(masks.values())).shape, bool)
    for mask in masks.values():
        union |= mask >= THRESHOLD
    return float(union.mean())
