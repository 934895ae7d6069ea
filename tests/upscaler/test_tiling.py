"""services/common/tiling.py: seamless stitching, batching and scale handling, on exact functions."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.tiling import feathers, tile_layout, tiled_apply


def nearest(factor: int):
    """A network stand-in whose every output pixel depends on one input pixel: tiling must be exact."""
    def run(batch: np.ndarray) -> np.ndarray:
        return batch.repeat(factor, axis=2).repeat(factor, axis=3)
    return run


@pytest.mark.parametrize("size, tile, overlap", [(10, 16, 4), (100, 32, 8), (97, 40, 12), (64, 32, 0), (1024, 256, 32)])
def test_tiles_cover_the_axis_and_feathers_sum_to_one(size, tile, overlap):
    starts, length = tile_layout(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] + length == size and length <= tile
    assert all(b - a <= length - overlap for a, b in zip(starts, starts[1:]))
    # The fewest tiles that can cover the axis: one fewer could not, even at the full tile size.
    assert len(starts) == 1 or (len(starts) - 1) * (tile - overlap) + overlap < size
    total = np.zeros(size)
    for start, weight in zip(starts, feathers(size, length, starts, overlap)):
        assert weight.min() >= 0
        total[start:start + length] += weight
    np.testing.assert_allclose(total, 1, atol=1e-6)


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_tiled_equals_whole_for_a_pointwise_function(factor, dtype):
    image = (np.random.default_rng(0).random((70, 53, 3)) * 255).astype(dtype)
    out = tiled_apply(image, nearest(factor), tile=24, overlap=8, batch=3)
    expected = image.astype(np.float32).repeat(factor, axis=0).repeat(factor, axis=1)
    assert out.shape == (70 * factor, 53 * factor, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3)


def test_tiles_are_batched_and_channels_may_change():
    calls = []

    def masks(batch: np.ndarray) -> np.ndarray:  # 3 channels in, 1 out, like a detector
        calls.append(batch.shape)
        return batch.mean(axis=1, keepdims=True)

    image = np.random.default_rng(1).random((50, 50, 3)).astype(np.float32)
    out = tiled_apply(image, masks, tile=20, overlap=6, batch=4)
    # 4 x 4 tiles of 17 x 17 (evened out from at most 20), in batches of 4.
    assert calls == [(4, 3, 17, 17)] * 4
    np.testing.assert_allclose(out[..., 0], image.mean(axis=2), atol=1e-5)


def test_photo_smaller_than_a_tile_is_one_call():
    calls = []
    image = np.zeros((9, 300, 3), np.uint8)
    tiled_apply(image, lambda batch: calls.append(batch.shape) or batch, tile=128, overlap=16, batch=8)
    assert calls == [(3, 3, 9, 111)]  # three tiles of at most 128 wide, evened out


def test_rejects_a_non_integer_scale_and_bad_settings():
    with pytest.raises(ValueError, match="integer scale"):
        tiled_apply(np.zeros((8, 8, 3)), lambda batch: batch[:, :, :5, :5], tile=8, overlap=2)
    with pytest.raises(ValueError):
        tiled_apply(np.zeros((8, 8, 3)), nearest(2), tile=8, overlap=8)
