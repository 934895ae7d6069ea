"""The network's input planes and its colour space, shared by training and serving.

The learned generator works in normalised CIELAB: lightness and chroma are
separate there, so colourizing means predicting two channels and keeping the
photo's own lightness, and a colour cast is an offset in a and b. Training
and serving build the input from this one module so they cannot drift apart.

Input channels (`CHANNELS` in order): L, a, b of the photo at working
resolution; the damage mask (scratch, tear, stain union) and the fading mask
as 0..1 coverage; the colourize flag as a constant plane; three noise planes
drawn from the seed (one constant latent, two smooth fields) that make
candidates differ.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.detector.training.synthetic_damage import smooth_noise

#: Scale of normalised Lab: L / 100, a and b / 110, so all three are about -1..1.
LAB_SCALE = np.array([100.0, 110.0, 110.0], np.float32)
NOISE_CHANNELS = 3
CHANNELS = 3 + 2 + 1 + NOISE_CHANNELS
#: The network's input sides must be multiples of this (pixel unshuffle, then two stride-2 levels).
MULTIPLE = 8


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxWx3 float32 normalised Lab."""
    return cv2.cvtColor(rgb.astype(np.float32) * (1 / 255.0), cv2.COLOR_RGB2Lab) / LAB_SCALE


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """HxWx3 float32 normalised Lab -> HxWx3 uint8 RGB (out-of-gamut colours clipped)."""
    scaled = lab * LAB_SCALE
    scaled[..., 0] = np.clip(scaled[..., 0], 0.0, 100.0)
    rgb = cv2.cvtColor(scaled.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def noise_planes(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """3xHxW: a constant latent and two fields with features a quarter of the picture wide."""
    scale = max(min(shape) / 4.0, 2.0)
    fields = [np.full(shape, rng.standard_normal(), np.float32)]
    fields += [smooth_noise(rng, shape, scale) for _ in range(NOISE_CHANNELS - 1)]
    return np.stack(fields)


def network_input(lab: np.ndarray, damage: np.ndarray, fading: np.ndarray, colorize: bool,
                  noise: np.ndarray) -> np.ndarray:
    """CHANNELS x H x W float32 from Lab (HxWx3), 0..1 masks (HxW), the flag and `noise_planes`."""
    flag = np.full(damage.shape, float(colorize), np.float32)
    return np.concatenate([lab.transpose(2, 0, 1), damage[None], fading[None], flag[None], noise]).astype(np.float32)
