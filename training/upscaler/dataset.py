"""Pairs for fine-tuning the upscaler: crops of clean photos and their bicubic downscales.

The degradation is the one the benchmark measures (Pillow's antialiased
bicubic, rounded to 8 bits), so `downscale` lives here and bench/ imports it.
Photos come from the detector's sources (registry packages only), minus the
upscaler's held-out samples (training/upscaler/heldout.py) and minus
the two wallpapers kept back for validation. The "wide" set adds
sources.EXTRA: fifteen more photographs (a portrait, architecture, water,
foliage), which super-resolution needs more than the detector does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.common import sources
from training.upscaler import heldout

#: Longer side the wallpapers are reduced to: their JPEG blocks vanish and detail
#: comes to about the scale of the held-out samples.
MAX_SIDE = 1600
VALIDATION = ("Storm.jpg", "YellowFlower.jpg")


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """The low-resolution input for a photo whose sides are multiples of `factor`."""
    height, width = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((width // factor, height // factor), Image.BICUBIC))


def _split(extra: tuple[sources.Photo, ...]) -> tuple[list[sources.Photo], list[sources.Photo]]:
    train, validation = [], []
    for photo in sources.TRAIN + sources.HELD_OUT + extra:
        name = Path(photo.path).name
        if Path(name).stem in heldout.PHOTOS:
            continue
        (validation if name in VALIDATION else train).append(photo)
    return train, validation


#: Training photos per set name; both share the validation photos.
PHOTO_SETS = {"base": _split(())[0], "wide": _split(sources.EXTRA)[0]}
VALIDATE = _split(())[1]


def load(photos: list[sources.Photo], data_dir: Path) -> list[np.ndarray]:
    return sources.load_all(tuple(photos), data_dir, MAX_SIDE)


def _crop(photo: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    y = int(rng.integers(photo.shape[0] - crop + 1))
    x = int(rng.integers(photo.shape[1] - crop + 1))
    patch = np.rot90(photo[y:y + crop, x:x + crop], int(rng.integers(4)))
    return np.ascontiguousarray(patch[:, ::-1] if rng.random() < 0.5 else patch)


def to_tensor_layout(images: list[np.ndarray]) -> np.ndarray:
    """HxWx3 uint8 images -> N x 3 x H x W float32 in 0..1, the models' interface."""
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255


def greyscale(rgb: np.ndarray) -> np.ndarray:
    """The photo as black-and-white (Pillow's BT.601 luma) in three equal channels."""
    return np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[:, :, None], 3, axis=2)


def batch(photos: list[np.ndarray], factor: int, crop: int, size: int, seed: int,
          step: int, grey: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(low-resolution, high-resolution) batch for `step`: the same on every rerun.

    A `grey` fraction of the crops is turned black-and-white, as most old photos
    are; with grey=0 no extra random number is drawn, so earlier runs' batches repeat.
    """
    rng = np.random.default_rng((seed, step))
    high = []
    for _ in range(size):
        crop_rgb = _crop(photos[int(rng.integers(len(photos)))], crop, rng)
        high.append(greyscale(crop_rgb) if grey and rng.random() < grey else crop_rgb)
    return to_tensor_layout([downscale(h, factor) for h in high]), to_tensor_layout(high)


def validation_pairs(photos: list[np.ndarray], factor: int, crop: int, count: int = 8,
                     seed: int = 2026) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation batch from the validation photos."""
    rng = np.random.default_rng(seed)
    high = [_crop(photos[i % len(photos)], crop, rng) for i in range(count)]
    return to_tensor_layout([downscale(h, factor) for h in high]), to_tensor_layout(high)
