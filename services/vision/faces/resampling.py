"""Cropping and resampling exactly as face-api feeds its networks.

The networks were trained and are checked against face-api's input path:
pad to a square with zeros (at the end for detection, centred for face crops),
then tf.image.resizeBilinear with align_corners=False and
half_pixel_centers=False. OpenCV's resize samples half a pixel elsewhere, which
moves landmarks measurably, so the TF arithmetic is reproduced here instead.
The padding is never materialised: a 4096-pixel photo would cost 200 MB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def js_round(value: float) -> int:
    """JavaScript's Math.round (halves go up), which face-api uses for pad sizes."""
    return math.floor(value + 0.5)


def _source_taps(out_size: int, square: int, offset: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                np.ndarray, np.ndarray]:
    """For each output index: the two source indices, their validity and the blend fraction.

    `offset` is where the image starts inside the padded square of side `square`;
    cells outside [offset, offset + length) are the zero padding.
    """
    position = np.arange(out_size, dtype=np.float64) * (square / out_size)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, square - 1)
    fraction = (position - low).astype(np.float32)
    low, high = low - offset, high - offset
    valid_low = (low >= 0) & (low < length)
    valid_high = (high >= 0) & (high < length)
    return np.clip(low, 0, length - 1), np.clip(high, 0, length - 1), valid_low, valid_high, fraction


def _gather(pixels: np.ndarray, axis: int, index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    taken = np.take(pixels, index, axis=axis)
    shape = [1] * taken.ndim
    shape[axis] = -1
    return taken * valid.reshape(shape).astype(np.float32)


def square_resize(pixels: np.ndarray, size: int, center: bool) -> np.ndarray:
    """HxWx3 -> size x size x 3 float32: padToSquare (zeros) then TF's legacy bilinear resize."""
    height, width = pixels.shape[:2]
    square = max(height, width)
    diff = square - min(height, width)
    # padToSquare appends round(diff / 2) (centred) or all of it, and prepends the rest.
    before = diff - js_round(diff * 0.5) if center else 0
    top = before if height < width else 0
    left = before if width < height else 0
    r_low, r_high, r_low_ok, r_high_ok, r_frac = _source_taps(size, square, top, height)
    c_low, c_high, c_low_ok, c_high_ok, c_frac = _source_taps(size, square, left, width)
    # Rows first, straight from the uint8 photo: only size rows ever become float.
    upper = _gather(pixels, 0, r_low, r_low_ok)
    lower = _gather(pixels, 0, r_high, r_high_ok)
    c_frac = c_frac[None, :, None]

    def blend_columns(rows: np.ndarray) -> np.ndarray:
        left_tap = _gather(rows, 1, c_low, c_low_ok)
        return left_tap + (_gather(rows, 1, c_high, c_high_ok) - left_tap) * c_frac

    top_row, bottom_row = blend_columns(upper), blend_columns(lower)
    return top_row + (bottom_row - top_row) * r_frac[:, None, None]


@dataclass(frozen=True)
class Crop:
    """An integer pixel region of the photo (what tf.slice3d takes)."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def clipped(cls, x: float, y: float, width: float, height: float, image_width: int, image_height: int) -> Crop:
        """face-api's Box.clipAtImageBorders: clip to the photo, then floor every field."""
        left, top = max(x, 0.0), max(y, 0.0)
        clipped_width = min(x + width - left, image_width - left)
        clipped_height = min(y + height - top, image_height - top)
        return cls(math.floor(left), math.floor(top), math.floor(clipped_width), math.floor(clipped_height))

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def of(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[self.y:self.y + self.height, self.x:self.x + self.width]
