"""Smooth random fields: the generator's seeded noise planes and the damage synthesiser's wobble share them."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-ish noise with features about `scale` pixels wide."""
    height, width = shape
    small = (max(2, int(height / scale) + 2), max(2, int(width / scale) + 2))
    field = rng.standard_normal(small).astype(np.float32)
    field = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
    return field / (field.std() + 1e-6)
