"""Training pairs for the generator: synthetically aged crops and what they should become.

The detector's `DamageSynthesizer` ages a crop drawn at twice the working
resolution; the damage is inpainted (`services.common.inpainting.fill_damage`) and the
photo and its masks are area-downscaled, exactly as the engine prepares a
photo and the detector's masks at serving time (so thin scratches arrive as
partial coverage, and the network improves on Telea's fill rather than
starting from the raw damage). Some samples are the clean photo itself,
untouched, so that "leave an intact photo alone" is learnt. Targets:

- colour print: the clean crop (fading, casts and damage undone);
- black-and-white print of a colour photo: with the colourize flag (most of
  the time) the clean colour crop, else the clean grey one;
- photos that are grey to begin with never ask for colour (no target exists).

Batches are seeded by (seed, step), so a resumed run sees the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.inpainting import fill_damage
from services.detector.engine import DAMAGE_TYPES as ALL_TYPES
from services.generator.planes import NOISE_CHANNELS, Conditions, network_input, noise_planes, rgb_to_lab
from training.detector.dataset import random_crop
from training.detector.synthetic_damage import DamageSample, DamageSynthesizer

#: Share of samples with no damage drawn (tone and scan only).
UNDAMAGED_SHARE = 0.2
#: Share of samples that are the clean photo itself, untouched: the model must leave these alone.
IDENTITY_SHARE = 0.12
#: Of black-and-white prints of colour photos, the share that asks for colour.
COLORIZE_SHARE = 0.8
#: Of colour prints, the share with the flag on anyway (it must not harm them).
COLOR_FLAG_SHARE = 0.15
DAMAGE_TYPES = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN)
#: Share of ordinary (not face-guided) pairs that ask for a gender, and for an age.
CONDITIONS_SHARE = 0.2
#: Requested ages are drawn from this range (years).
AGE_RANGE = (8.0, 85.0)


@dataclass
class Pair:
    #: CHANNELS x H x W network input without its noise planes (they are drawn per try).
    planes: np.ndarray
    #: 3 x H x W normalised Lab target.
    target: np.ndarray
    #: H x W damage coverage 0..1 (weights the loss and the metrics).
    damage: np.ndarray
    #: 2H x 2W: the lightness detail of the (filled) photo that the working resolution drops, normalised
    #: like L. What the composer adds back at full resolution; the face critic looks at the result with it.
    detail: np.ndarray


def is_grey(rgb: np.ndarray) -> bool:
    return bool(np.abs(rgb.astype(np.int16) - rgb[..., :1]).max() <= 2)


def random_conditions(colorize: bool, rng: np.random.Generator, share: float) -> Conditions:
    """The colourize flag, and with probability `share` each a random requested gender and age.

    Asked on photos whose face the critic cannot judge (or that have none),
    they must leave the restoration as it was: the reconstruction loss says so.
    """
    asked = rng.random() < share
    gender = int(rng.choice([common_pb2.FEMALE, common_pb2.MALE])) if asked else common_pb2.GENDER_UNSPECIFIED
    age = float(rng.uniform(*AGE_RANGE)) if rng.random() < share else None
    return Conditions(colorize, gender, age)


def make_pair(photo: np.ndarray, synth: DamageSynthesizer, size: int, rng: np.random.Generator,
              undamaged: bool | None = None) -> Pair:
    """One aged random crop of `photo` (size x size after the 2x area downscale) and its target."""
    return pair_from_crop(random_crop(photo, 2 * size, rng), synth, size, rng, undamaged)


def pair_from_crop(crop: np.ndarray, synth: DamageSynthesizer, size: int, rng: np.random.Generator,
                   undamaged: bool | None = None, conditions: Conditions | None = None) -> Pair:
    """`crop` (2*size square) aged, prepared as the engine prepares a photo, with its target.

    Without `conditions`, colourizing follows the print (`COLORIZE_SHARE`,
    `COLOR_FLAG_SHARE`) and gender and age are sometimes asked at random.
    """
    if undamaged is None:
        undamaged = rng.random() < UNDAMAGED_SHARE
    if undamaged and rng.random() < IDENTITY_SHARE / UNDAMAGED_SHARE:
        sample = DamageSample(crop, crop, {kind: np.zeros(crop.shape[:2], np.uint8) for kind in ALL_TYPES}, 0.0, False)
    else:
        sample = synth(crop, rng, undamaged=undamaged)
    if conditions is None:
        colour_source = not is_grey(crop)
        share = COLORIZE_SHARE if sample.grayscale else COLOR_FLAG_SHARE
        conditions = random_conditions(colour_source and rng.random() < share, rng, CONDITIONS_SHARE)
    target = crop if conditions.colorize else sample.clean

    def down(pixels: np.ndarray) -> np.ndarray:
        return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)

    union = np.max([sample.masks[kind] for kind in DAMAGE_TYPES], axis=0)
    damage = down(union.astype(np.float32) / 255.0)
    fading = down(sample.masks[common_pb2.FADING].astype(np.float32) / 255.0)
    filled = fill_damage(sample.damaged, union)  # as the engine does at full resolution
    working = rgb_to_lab(down(filled))
    planes = network_input(working, damage, fading, conditions, np.zeros((NOISE_CHANNELS, size, size), np.float32))
    blurred = cv2.resize(working[..., 0], filled.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    detail = rgb_to_lab(filled)[..., 0] - blurred
    return Pair(planes, rgb_to_lab(down(target)).transpose(2, 0, 1), damage, detail)


def with_tries(pairs: Sequence[Pair], tries: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs (len*tries x C x H x W, each pair repeated `tries` times with its own noise), targets, damage."""
    inputs = np.repeat(np.stack([p.planes for p in pairs]), tries, axis=0)
    for row in inputs:
        row[-NOISE_CHANNELS:] = noise_planes(rng, row.shape[1:])
    return inputs, np.stack([p.target for p in pairs]), np.stack([p.damage for p in pairs])


def batch(photos: Sequence[np.ndarray], synth: DamageSynthesizer, size: int, count: int, tries: int,
          seed: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`count` random pairs as `with_tries` lays them out."""
    rng = np.random.default_rng([seed, step])
    return with_tries([make_pair(photos[int(rng.integers(0, len(photos)))], synth, size, rng) for _ in range(count)],
                      tries, rng)


def held_out_pairs(photos: Sequence[np.ndarray], count: int, size: int, seed: int = 2026) -> list[Pair]:
    """A fixed validation set from the held-out photos, every pair damaged."""
    synth = DamageSynthesizer()
    return [make_pair(photos[i % len(photos)], synth, size, np.random.default_rng([seed, i]), undamaged=False)
            for i in range(count)]
