"""Geometric self-ensemble: the mean of a model's answers on mirrored and rotated copies of its input.

A convolutional upscaler's errors depend on orientation (its filters are
learned, not symmetric), so turning each answer back and averaging cancels
part of them: the "+" of EDSR+ and RCAN+. It costs one model pass per copy,
which is why it is a setting (`--upscaler-ensemble`) and off by default;
bench/upscaler_bench.py measures what it buys.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: (quarter turns, mirrored) in the order copies are added: mirror first, then the half
#: turn, then the quarter turns, so that 2 and 4 copies are the most different ones.
TRANSFORMS = ((0, False), (0, True), (2, False), (2, True), (1, False), (1, True), (3, False), (3, True))
SIZES = (1, 2, 4, 8)

Model = Callable[[np.ndarray], np.ndarray]


def checked_size(copies: int) -> int:
    """`copies` if it is a size the ensemble supports; engines call it at start-up to fail early."""
    if copies not in SIZES:
        raise ValueError(f"self-ensemble size must be one of {SIZES}, not {copies}")
    return copies


def self_ensemble(run: Model, batch: np.ndarray, copies: int) -> np.ndarray:
    """`run` on `copies` transformed views of an N x C x H x W batch, each mapped back, averaged."""
    checked_size(copies)
    total: np.ndarray | None = None
    for turns, mirrored in TRANSFORMS[:copies]:
        view = np.rot90(batch, turns, axes=(2, 3))
        answer = run(np.ascontiguousarray(view[..., ::-1] if mirrored else view))
        answer = np.rot90(answer[..., ::-1] if mirrored else answer, -turns, axes=(2, 3))
        if total is None:
            total = np.array(answer, dtype=np.float32)
        else:
            total += answer
    total /= copies
    return total
