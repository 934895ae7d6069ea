"""Resizing that holds for every shape: a 4096x1 photo shrinks to at least a pixel a side, and small
fields grow to full resolution a band of rows at a time, so a 4096x4096 photo never needs a full float copy."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from services.common import cancellation

#: Rows per full-resolution strip.
STRIP = 256


def shrink_to(image: np.ndarray, side: int) -> np.ndarray:
    """`image` area-averaged so its long side is at most `side`; never a side of 0 (a 4096x1 scan stays 512x1)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def upsample_rows(field: np.ndarray, rows: slice, size: tuple[int, int]) -> np.ndarray:
    """Rows `rows` of `field` (h x w x C float32) bilinearly resized to `size` (H, W), as cv2.resize would."""
    height, width = size
    small_h, small_w = field.shape[:2]
    xs = ((np.arange(width, dtype=np.float32) + 0.5) * (small_w / width) - 0.5)
    ys = ((np.arange(rows.start, rows.stop, dtype=np.float32) + 0.5) * (small_h / height) - 0.5)
    map_x = np.broadcast_to(xs, (len(ys), width))
    map_y = np.broadcast_to(ys[:, None], (len(ys), width))
    parts = [cv2.remap(np.ascontiguousarray(field[..., group]), map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE).reshape(len(ys), width, -1)
             for group in channel_groups(field.shape[2])]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def channel_groups(channels: int) -> list[slice]:
    """Channels in the groups remap takes at once: fours, then a three or ones. A 12-channel field is three
    calls, not twelve; two channels go one by one (on a two-channel field remap and resize differ by up to 0.016)."""
    fours = channels // 4 * 4
    groups = [slice(c, c + 4) for c in range(0, fours, 4)]
    rest = channels - fours
    return groups + ([slice(fours, channels)] if rest == 3 else [slice(c, c + 1) for c in range(fours, channels)])


def strips(height: int) -> Iterator[slice]:
    """Row bands of `STRIP`; between bands, work whose caller has gone stops."""
    for top in range(0, height, STRIP):
        cancellation.check()
        yield slice(top, min(top + STRIP, height))
