"""Candidates of one photo super-resolved once: the first for real, the others carried onto it.

A generator's candidates of one photo share its detail, and differ in tone and
colour that vary smoothly over the photo: each is, to within rounding, the
first through per-pixel affine colour maps (the generator itself composes
them that way, services/generator/compose.py). So the first candidate is
super-resolved, the maps from it to each sibling are fitted at a low
resolution (the fast guided filter's fit, services/common/guided.py) and
applied to its super-resolution. Where the maps do not reproduce a sibling at
its own size within `SHARE_DB` (a face refilled from a different candidate, a
texture that differs), that sibling is super-resolved itself. Four candidates
then cost about one super-resolution instead of four: the upscale is most of
a 1 MP, 4-candidate x2 request on CPUs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from services.common.guided import apply_rows, guided_coefficients
from services.common.resize import shrink_to, strips

#: Long side of the resolution the maps between siblings are fitted at.
FIT_SIDE = 512
#: Guided fit window radius (fit-resolution pixels) and regulariser (RGB in 0..1, squared).
RADIUS = 2
EPS = 1e-4
#: A sibling is carried onto the first's super-resolution only if the maps reproduce it, at its own size,
#: at least this closely (PSNR over RGB, dB): beyond ~40 dB no difference is visible.
SHARE_DB = 42.0


@dataclass
class Upscaled:
    rgb: np.ndarray
    #: True when carried onto the first image's super-resolution rather than super-resolved itself.
    shared: bool


def upscale_siblings(images: list[np.ndarray], factor: int,
                     upscale: Callable[[np.ndarray, int], np.ndarray]) -> Iterator[Upscaled]:
    """Each of `images` (same size, HxWx3 uint8) `factor` times larger, in order, as `upscale` would make it."""
    first = images[0]
    first_big = upscale(first, factor)
    yield Upscaled(first_big, shared=False)
    small_first = shrink_to(first, FIT_SIDE).astype(np.float32) / 255.0
    for image in images[1:]:
        if np.array_equal(image, first):
            yield Upscaled(first_big, shared=True)
            continue
        maps = guided_coefficients(small_first, shrink_to(image, FIT_SIDE).astype(np.float32) / 255.0, RADIUS, EPS)
        if psnr(image, mapped(first, maps)) >= SHARE_DB:
            yield Upscaled(mapped(first_big, maps), shared=True)
        else:
            yield Upscaled(upscale(image, factor), shared=False)


def mapped(guide: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """`guide` (uint8, any size) through the per-pixel affine maps (fitted at a lower resolution)."""
    out = np.empty_like(guide)
    for rows in strips(guide.shape[0]):
        result = apply_rows(guide[rows].astype(np.float32) / 255.0, maps, rows, guide.shape[:2])
        out[rows] = np.clip(result * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return float("inf") if error == 0 else 10.0 * np.log10(255.0 ** 2 / error)
