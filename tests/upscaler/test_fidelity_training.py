"""FidelitySR and its training data: starts as bicubic, batches repeat, held-out photos stay out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tests.photos import portrait
from training.upscaler import dataset, heldout
from training.upscaler.model import FidelitySR, grow


@pytest.mark.parametrize("factor", [2, 4])
def test_untrained_network_is_bicubic(factor):
    """The skip's conv + pixel shuffle reproduces torch's bicubic, borders included, to float rounding."""
    rgb = torch.rand(2, 3, 12, 20)
    expected = F.interpolate(rgb, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(FidelitySR(factor)(rgb), expected, atol=1e-6)


@pytest.mark.parametrize("channels, blocks", [(8, 5), (12, 2), (12, 5)])
def test_a_grown_network_computes_what_the_trained_one_did(channels, blocks):
    """Deeper, wider or both: the bigger network starts exactly where the trained one was."""
    torch.manual_seed(0)
    small = FidelitySR(4, channels=8, blocks=2)
    for parameter in small.parameters():  # nonzero everywhere, so every weight moved by growing would show
        torch.nn.init.normal_(parameter, std=0.05)
    big = FidelitySR(4, channels=channels, blocks=blocks)
    grow(big, small.state_dict())
    rgb = torch.rand(1, 3, 10, 14)
    assert torch.allclose(big(rgb), small(rgb), atol=1e-6)
    # ...and can learn: the new channels' route into the output receives gradient.
    (big(rgb) - torch.rand(1, 3, 40, 56)).abs().mean().backward()
    assert channels == 8 or big.tail[0].weight.grad[:, 8:].abs().sum() > 0
    rebuilt = FidelitySR.from_state(4, big.state_dict())
    assert torch.equal(rebuilt(rgb), big(rgb))


@pytest.mark.parametrize("channels, blocks", [(8, 1), (4, 2)])
def test_growing_refuses_to_shrink(channels, blocks):
    with pytest.raises(ValueError, match="cannot shrink"):
        grow(FidelitySR(4, channels=channels, blocks=blocks), FidelitySR(4, channels=8, blocks=2).state_dict())


def test_bfloat16_training_keeps_the_bicubic_skip_in_float32():
    """Under autocast only the correction is bfloat16; the image it is added to is not rounded."""
    model = FidelitySR(4, channels=8, blocks=1)  # untrained: the correction is exactly zero
    rgb = torch.rand(2, 3, 12, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        correction = model.correction(rgb)
        naive = model.bicubic(rgb)
    assert correction.dtype == torch.bfloat16
    composed = model.compose(rgb, correction)
    expected = F.interpolate(rgb, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    assert composed.dtype == torch.float32 and torch.allclose(composed, expected, atol=1e-6)
    assert (naive.float() - expected).abs().max() > 1e-3  # what skipping `compose` would have cost


def test_training_never_sees_the_benchmark_photos():
    for photos in dataset.PHOTO_SETS.values():
        names = {Path(photo.path).stem for photo in photos + dataset.VALIDATE}
        assert names and not names & set(heldout.PHOTOS)
        assert not {p.path for p in photos} & {p.path for p in dataset.VALIDATE}


def test_batches_are_a_function_of_seed_and_step():
    photos = [portrait(200, 160, seed=s) for s in range(3)]
    low, high = dataset.batch(photos, 4, 64, 5, seed=1, step=7)
    again_low, again_high = dataset.batch(photos, 4, 64, 5, seed=1, step=7)
    other_low, _ = dataset.batch(photos, 4, 64, 5, seed=1, step=8)
    assert low.shape == (5, 3, 16, 16) and high.shape == (5, 3, 64, 64)
    assert np.array_equal(low, again_low) and np.array_equal(high, again_high)
    assert not np.array_equal(low, other_low)
    # The input is the benchmark's degradation of the target, not some other one.
    first = (high[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
    assert np.array_equal((low[0].transpose(1, 2, 0) * 255).round().astype(np.uint8), dataset.downscale(first, 4))


def test_grey_crops_are_black_and_white_and_change_nothing_else():
    photos = [portrait(200, 160, seed=s) for s in range(3)]
    colour_low, colour_high = dataset.batch(photos, 4, 64, 6, seed=1, step=3)
    grey_low, grey_high = dataset.batch(photos, 4, 64, 6, seed=1, step=3, grey=1.0)
    assert all(np.ptp(crop, axis=0).max() > 0.05 for crop in colour_high)  # the portraits are in colour
    assert np.array_equal(grey_high[:, 0], grey_high[:, 1]) and np.array_equal(grey_high[:, 1], grey_high[:, 2])
    assert np.array_equal(grey_low[:, 0], grey_low[:, 2])
    # The first crop is drawn before any grey draw: the same crop, only without colour (its luma).
    luma = (colour_high[0] * np.array([0.299, 0.587, 0.114], np.float32)[:, None, None]).sum(axis=0)
    assert np.abs(grey_high[0, 0] - luma).max() <= 1.5 / 255
