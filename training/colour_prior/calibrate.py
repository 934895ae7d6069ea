"""How much the network's colour counts, by its spread: what it earns on validation photos.

Outside people the colourizer imposes weight x the network's colour (plus the
rest of a candidate's backdrop), the weight a function of the network's spread
(colourize.SCENE_WEIGHTS). The weights are read off the validation photos
(dataset.validation_photos, never trained on): per spread bin, the weight in
0, 0.1 .. 1 whose scaled colour lands nearest the truth (mean ab distance),
then made non-increasing in the spread (pool adjacent violators).
Where the network is right the weight is 1; where it guesses, a colour pulled
towards grey is nearer the truth on average than a vivid wrong one. The export
writes the table and the weights to the manifest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from services.generator.colourize import SOLVE_SIDE
from services.vision.scene_colour import MULTIPLE, network_planes
from training.colour_prior.dataset import pooled_ab
from training.colour_prior.model import AnnealedMean

#: Spread bin edges (ab units).
EDGES = tuple(range(0, 62, 4))
#: Bins with fewer validation pixels say too little to be used.
MIN_PIXELS = 200
#: Weights tried per bin.
WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))


@dataclass(frozen=True)
class SpreadCalibration:
    #: (spread at the bin's middle, weight) points, spread ascending.
    weights: list[tuple[float, float]]
    #: Per bin: [low, high, share of pixels, network's mean ab error, grey's, the weight's].
    table: list[list[float]]


def judged(served: AnnealedMean, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h x w x 3 network output: a, b, spread; h x w x 2 true ab) for a whole Lab photo at the served size
    (the colourizer's solve grid)."""
    scale = SOLVE_SIDE / max(lab.shape[:2])
    small = cv2.resize(lab, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    height, width = (side - side % MULTIPLE for side in small.shape[:2])
    small = small[:height, :width]
    with torch.no_grad():
        untilted = torch.zeros(1, 2)
        out = served(torch.from_numpy(network_planes(small[..., 0]))[None], untilted)[0].numpy().transpose(1, 2, 0)
    return out, pooled_ab(small)


def calibrate(served: AnnealedMean, labs: list[np.ndarray]) -> SpreadCalibration:
    colours, truths, spreads = [], [], []
    for lab in labs:
        out, truth = judged(served, lab)
        colours.append(out[..., :2].reshape(-1, 2))
        truths.append(truth.reshape(-1, 2))
        spreads.append(out[..., 2].ravel())
    colour, truth, spread = (np.concatenate(values) for values in (colours, truths, spreads))
    table: list[list[float]] = []
    weights: list[tuple[float, float]] = []
    for low, high in itertools.pairwise(EDGES):
        inside = (spread >= low) & (spread < high)
        if inside.sum() < MIN_PIXELS:
            continue
        errors = [float(np.linalg.norm(w * colour[inside] - truth[inside], axis=1).mean()) for w in WEIGHTS]
        best = int(np.argmin(errors))
        table.append([low, high, round(float(inside.mean()), 4), round(errors[-1], 2), round(errors[0], 2),
                      round(errors[best], 2)])
        weights.append(((low + high) / 2, WEIGHTS[best]))
    shares = [row[2] for row in table]
    return SpreadCalibration(list(zip([spread for spread, _ in weights],
                                      non_increasing([w for _, w in weights], shares), strict=True)), table)


def non_increasing(values: list[float], shares: list[float]) -> list[float]:
    """The nearest non-increasing sequence (pool adjacent violators, weighted by `shares`): a wider spread
    never earns more trust, and a thin bin that says so is noise."""
    blocks: list[list[float]] = []  # [weighted mean, total share, count]
    for value, share in zip(values, shares, strict=True):
        blocks.append([value, share, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            (upper, upper_share, upper_count), (lower, lower_share, lower_count) = blocks[-2], blocks.pop()
            total = upper_share + lower_share
            blocks[-1] = [(upper * upper_share + lower * lower_share) / total, total, upper_count + lower_count]
    return [round(mean, 2) for mean, _, count in blocks for _ in range(count)]
