"""Geometric self-ensemble: every copy is turned back exactly, and on a real photo it helps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.upscaler_bench import psnr_ssim
from services.upscaler.engines.fidelity import FidelityUpscaler
from services.upscaler.engines.self_ensemble import SIZES, self_ensemble
from training.upscaler import heldout
from training.upscaler.dataset import downscale


def nearest_x2(batch: np.ndarray) -> np.ndarray:
    """Commutes with every rotation and mirror: an ensemble of it must change nothing."""
    return batch.repeat(2, axis=2).repeat(2, axis=3)


@pytest.mark.parametrize("copies", SIZES)
def test_each_copy_is_mapped_back_to_the_original_orientation(copies):
    batch = np.random.default_rng(copies).random((2, 3, 5, 7), dtype=np.float32)  # not square
    result = self_ensemble(nearest_x2, batch, copies)
    assert result.shape == (2, 3, 10, 14) and result.dtype == np.float32
    assert np.allclose(result, nearest_x2(batch), atol=1e-6)


def test_orientation_dependent_errors_cancel():
    """A model that smears to the right: its mirrored copy smears left, and the pair averages out."""

    def smear_right(batch: np.ndarray) -> np.ndarray:
        return 0.5 * (batch + np.roll(batch, 1, axis=3))

    impulse = np.zeros((1, 1, 1, 9), np.float32)
    impulse[..., 4] = 1
    assert np.allclose(self_ensemble(smear_right, impulse, 2)[0, 0, 0, 3:6], [0.25, 0.5, 0.25])


def test_refuses_sizes_that_are_not_a_subgroup():
    with pytest.raises(ValueError, match="one of"):
        self_ensemble(nearest_x2, np.zeros((1, 3, 4, 4), np.float32), 3)
    with pytest.raises(ValueError, match="one of"):
        FidelityUpscaler(ensemble=5)


def test_the_fidelity_model_gains_from_it_on_a_held_out_photo():
    truth = heldout.load("astronaut")[64:320, 128:384]
    small = downscale(truth, 4)
    bicubic = psnr_ssim(truth, cv2.resize(small, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC), 4)[0]
    single, ensembled = (psnr_ssim(truth, FidelityUpscaler(ensemble=copies).upscale(small, 4), 4)[0] - bicubic
                         for copies in (1, 8))
    assert ensembled > single > 0, f"single pass {single:+.2f} dB, self-ensemble of 8 {ensembled:+.2f} dB"
