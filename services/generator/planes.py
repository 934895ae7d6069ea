"""The network's input planes and its colour space, shared by training and serving.

The learned generator works in normalised CIELAB: lightness and chroma are
separate there, so colourizing means predicting two channels and keeping the
photo's own lightness, and a colour cast is an offset in a and b. Training
and serving build the input from this one module so they cannot drift apart.

Input channels (`CHANNELS` in order): L, a, b of the photo at working
resolution; the damage mask (scratch, tear, stain union) and the fading mask
as 0..1 coverage; the conditions as constant planes (`Conditions`: colourize,
gender, age, whether an age was asked); three noise planes drawn from the
seed (one constant latent, two smooth fields) that make candidates differ.
The noise planes come last, so training can redraw them per try.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.noise import smooth_noise

#: Scale of normalised Lab: L / 100, a and b / 110, so all three are about -1..1.
LAB_SCALE = np.array([100.0, 110.0, 110.0], np.float32)
NOISE_CHANNELS = 3
CONDITION_CHANNELS = 4
CHANNELS = 3 + 2 + CONDITION_CHANNELS + NOISE_CHANNELS
#: Where the condition planes sit in the input.
CONDITIONS = slice(5, 5 + CONDITION_CHANNELS)
#: Requested age as a plane: (age - AGE_CENTER) / AGE_SPAN, so 10..70 years is -1..1.
AGE_CENTER = 40.0
AGE_SPAN = 30.0
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


@dataclass(frozen=True)
class Conditions:
    """What the user asked of the photo as a whole: colour, and whose face it should look like."""

    colorize: bool = False
    #: common_pb2.Gender; GENDER_UNSPECIFIED lets the photo decide.
    gender: int = common_pb2.GENDER_UNSPECIFIED
    #: Apparent age in years; None lets the photo decide.
    age: float | None = None

    @classmethod
    def of(cls, colorize: bool, options: common_pb2.RestoreOptions) -> "Conditions":
        return cls(colorize, options.gender, float(options.age) if options.HasField("age") else None)

    def values(self) -> tuple[float, float, float, float]:
        """The four plane values: colourize 0/1, gender +1 female / -1 male / 0 auto, age, age asked 0/1."""
        gender = {common_pb2.FEMALE: 1.0, common_pb2.MALE: -1.0}.get(self.gender, 0.0)
        if self.age is None:
            return float(self.colorize), gender, 0.0, 0.0
        return float(self.colorize), gender, (self.age - AGE_CENTER) / AGE_SPAN, 1.0


def network_input(lab: np.ndarray, damage: np.ndarray, fading: np.ndarray, conditions: Conditions,
                  noise: np.ndarray) -> np.ndarray:
    """CHANNELS x H x W float32 from Lab (HxWx3), 0..1 masks (HxW), the conditions and `noise_planes`."""
    values = np.array(conditions.values(), np.float32)[:, None, None]
    constant = np.broadcast_to(values, (CONDITION_CHANNELS, *damage.shape))
    return np.concatenate([lab.transpose(2, 0, 1), damage[None], fading[None], constant, noise]).astype(np.float32)
