"""Running a fully convolutional network over a large photo in overlapping tiles.

A 4096x4096 photo does not fit a network's activations in memory at once, so
it is cut into tiles that overlap by `overlap` pixels. Near a tile's border a
network sees zero padding instead of the photo, so its output there is wrong:
each tile's output is weighted by a feather that is zero over the outer
quarter of the overlap and rises linearly across the rest of it, and the
weights of all tiles covering a pixel are normalised to sum to one. Tiles of
one size are stacked into batches, so a batch is one inference call.

Used by the upscaler (output scale 2 or 4) and meant for the detector too
(scale 1, masks instead of RGB): the scale is read off the network's output.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from services.common import cancellation

#: Maps N x C x h x w float32 to N x C' x (h*s) x (w*s) float32, for one integer s.
BatchFn = Callable[[np.ndarray], np.ndarray]


def tile_layout(size: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Offsets and the common length of the fewest tiles of at most `tile` covering [0, size), each
    overlapping the next by at least `overlap`.

    The tiles are evened out rather than cut at `tile` with a last one pushed flush to the far edge:
    a 1024-pixel side in tiles of 256 overlapping by 32 is four tiles of 280, not five of 256 of which
    the last repeats most of the fourth. Every pixel computed twice is time the photo waits.
    """
    if size <= tile:
        return [0], size
    count = -(-(size - overlap) // (tile - overlap))
    length = -(-(size - overlap) // count) + overlap
    step = (size - length) / (count - 1)
    return [round(index * step) for index in range(count)], length


def feathers(size: int, length: int, starts: list[int], overlap: int) -> list[np.ndarray]:
    """Per-tile 1-D weights along one axis (in output pixels) that sum to one at every position.

    A tile's weight is zero within overlap/4 of an edge it shares with a
    neighbour, then rises linearly to one at the far end of the overlap;
    edges on the photo's own border keep weight one.
    """
    margin = overlap / 4
    ramp = max(overlap - 2 * margin, 1.0)
    inside = np.arange(length, dtype=np.float32) + 0.5
    raw = []
    for start in starts:
        rise = np.clip((inside - margin) / ramp, 0, 1) if start > 0 else np.ones(length, np.float32)
        fall = np.clip((length - inside - margin) / ramp, 0, 1) if start + length < size else np.ones(length, np.float32)
        raw.append(np.minimum(rise, fall))
    total = np.zeros(size, np.float32)
    for start, weight in zip(starts, raw):
        total[start:start + length] += weight
    if not np.all(total > 0):
        raise ValueError(f"overlap {overlap} leaves pixels without a tile weight")
    return [weight / total[start:start + length] for start, weight in zip(starts, raw)]


def _batches(items: list[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for first in range(0, len(items), size):
        yield items[first:first + size]


def tiled_apply(image: np.ndarray, fn: BatchFn, tile: int, overlap: int, batch: int = 1) -> np.ndarray:
    """`fn` applied to HxWxC `image` tile by tile; returns the stitched (H*s)x(W*s)xC' float32.

    Tiles are handed to `fn` as float32 N x C x h x w with the image's values
    unchanged (uint8 becomes 0..255 floats; scaling is the caller's business).
    All tiles have the same shape, at most `tile` a side (`tile_layout`), so any
    batch stacks; the last batch may be smaller than `batch`.
    """
    if image.ndim != 3:
        raise ValueError(f"expected HxWxC, got shape {image.shape}")
    if not 0 <= overlap < tile or batch < 1:
        raise ValueError(f"need 0 <= overlap ({overlap}) < tile ({tile}) and batch ({batch}) >= 1")
    height, width = image.shape[:2]
    (rows, tile_h), (cols, tile_w) = tile_layout(height, tile, overlap), tile_layout(width, tile, overlap)
    out: np.ndarray | None = None
    for group in _batches([(top, left) for top in rows for left in cols], batch):
        cancellation.check()
        inputs = np.stack([image[top:top + tile_h, left:left + tile_w] for top, left in group])
        outputs = np.asarray(fn(inputs.transpose(0, 3, 1, 2).astype(np.float32)))
        scale = outputs.shape[2] // tile_h
        if outputs.shape[0] != len(group) or outputs.shape[2:] != (tile_h * scale, tile_w * scale) or scale < 1:
            raise ValueError(f"fn mapped {inputs.shape[:3]} tiles to {outputs.shape}: not one integer scale")
        if out is None:
            out = np.zeros((height * scale, width * scale, outputs.shape[1]), np.float32)
            row_weights = feathers(height * scale, tile_h * scale, [r * scale for r in rows], overlap * scale)
            col_weights = feathers(width * scale, tile_w * scale, [c * scale for c in cols], overlap * scale)
        for (top, left), result in zip(group, outputs):
            weight = row_weights[rows.index(top)][:, None] * col_weights[cols.index(left)][None, :]
            y, x = top * scale, left * scale
            out[y:y + tile_h * scale, x:x + tile_w * scale] += result.transpose(1, 2, 0) * weight[:, :, None]
    assert out is not None  # at least one tile always exists
    return out
