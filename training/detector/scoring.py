"""Pixel-level scores of damage masks: IoU and F1 per type, and false alarms.

Counts are summed over a whole evaluation set before dividing, so a sample
with one tiny scratch does not weigh as much as one with a large tear
(micro-averaging, as in the usual segmentation benchmarks). A mask value of
128 or more counts as damaged, the same threshold DamageReport coverage uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.detector.engine import DAMAGE_TYPES

THRESHOLD = 128


@dataclass
class Counts:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        hit, real = predicted >= THRESHOLD, truth >= THRESHOLD
        self.true_positive += int(np.count_nonzero(hit & real))
        self.false_positive += int(np.count_nonzero(hit & ~real))
        self.false_negative += int(np.count_nonzero(~hit & real))

    @property
    def iou(self) -> float:
        denominator = self.true_positive + self.false_positive + self.false_negative
        return self.true_positive / denominator if denominator else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positive + self.false_positive + self.false_negative
        return 2 * self.true_positive / denominator if denominator else 1.0


@dataclass
class SegmentationScore:
    """Per-type counts over an evaluation set."""

    counts: dict[int, Counts] = field(default_factory=lambda: {kind: Counts() for kind in DAMAGE_TYPES})

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
