"""Telea inpainting plus tone restoration: the classical generator baseline.

Fills the detector's scratch/tear/stain masks with OpenCV's Telea (or, for
some seeds, Navier-Stokes) inpainting, then restores tone with a levels
stretch, gamma and grey-world white balance. The seed picks the inpainting
radius and method and the tone parameters within narrow ranges, so
candidates differ while each stays faithful. It cannot colourize, follow
hair colour, gender or age: those need the learned engine.
"""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.config import ServiceConfig
from services.common.metrics import timed_inference
from services.generator.engine import CandidateStep, RestorationInput


def fill_region(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 0/1: the damage (`mask` >= 128) grown by the 1 or 2 pixels the seed's generator draws first."""
    return cv2.dilate((mask >= 128).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))


def inpaint(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if not mask.any():
        return rgb
    grown = fill_region(mask, rng)
    method = cv2.INPAINT_TELEA if rng.random() < 0.75 else cv2.INPAINT_NS
    return cv2.inpaint(np.ascontiguousarray(rgb), grown, float(rng.integers(3, 8)), method)


def tone_curves(rgb: np.ndarray, rng: np.random.Generator, strength: float, neutral: bool) -> np.ndarray:
    """Per-channel 256-entry curves: levels stretch, gamma and white balance in one LUT."""
    sample = rgb[:: max(1, rgb.shape[0] // 512), :: max(1, rgb.shape[1] // 512)].reshape(-1, 3).astype(np.float32)
    luma = sample @ np.array([0.299, 0.587, 0.114], np.float32)
    clip = rng.uniform(0.2, 1.5)
    low, high = np.percentile(luma, (clip, 100 - clip))
    high = max(high, low + 1.0)
    means = sample.mean(axis=0)
    # Grey-world gains; a black-and-white photo is made truly neutral (sepia removed).
    balance = 1.0 if neutral else rng.uniform(0.5, 1.0)
    gains = 1.0 + balance * (means.mean() / np.maximum(means, 1.0) - 1.0)
    gamma = rng.uniform(0.9, 1.1)
    levels = np.arange(256, dtype=np.float32)
    curves = []
    for channel in range(3):
        stretched = np.clip((levels * gains[channel] - low) / (high - low), 0.0, 1.0) ** gamma * 255.0
        curves.append(levels + strength * (stretched - levels))
    return np.clip(np.stack(curves, axis=1), 0, 255).astype(np.uint8)


class TeleaGenerator:
    name = "telea"
    provider = "opencv"

    def __init__(self, config: ServiceConfig | None = None) -> None:
        """Needs no model; `config` is accepted to match every engine factory."""

    def warm_up(self) -> None:
        rgb = np.full((32, 32, 3), 128, np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[10:12] = 255
        request = RestorationInput(rgb, {common_pb2.SCRATCH: mask}, common_pb2.DamageReport(), common_pb2.RestoreOptions())
        self.generate(request, 0)

    def generate(self, request: RestorationInput, seed: int, keep_faces: CandidateStep | None = None) -> np.ndarray:
        rng = np.random.default_rng(seed)
        strength = request.strength
        with timed_inference(self.name, self.provider):
            filled = inpaint(request.rgb, request.damage_mask(), rng)
            curves = tone_curves(filled, rng, strength, neutral=request.report.is_grayscale)
            restored = cv2.LUT(filled, curves.reshape(256, 1, 3))
        return keep_faces(restored) if keep_faces else restored

    def repaired(self, request: RestorationInput, seed: int) -> np.ndarray:
        """What `generate` fills for `seed`: its first draw grows the damage (see `inpaint`)."""
        return fill_region(request.damage_mask(), np.random.default_rng(seed)) * np.uint8(255)
