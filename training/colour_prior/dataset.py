"""Training batches for SceneColourNet: crops of the colour training photos, their lightness in, their ab out.

The photos: the registry packages' of training/common/sources.py (TRAIN, EXTRA
and the training portraits) and GCompris's photographs (photos.py), but one in
six of those, which with the detector's held-out photos is this model's
validation set. None of the colour benchmark's photos
(training/common/colour_photos.py) is among either. Grey photos (camera, moon,
coins) teach nothing about colour and are left out.

Each batch comes from a generator seeded by (seed, step), so a resumed run
draws exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from services.generator.colourize import SOLVE_SIDE
from services.generator.planes import LAB_SCALE, rgb_to_lab
from services.vision.scene_colour import STRIDE, network_planes
from training.colour_prior.model import ab_bins
from training.common import gcompris_photos as photos
from training.common import sources

#: The registry photos of the validation set: the detector's held-out ones but the astronaut, which the colour
#: benchmark holds out.
VALIDATION_REGISTRY = tuple(photo for photo in sources.HELD_OUT if not photo.path.endswith("astronaut.png"))
#: Mean chroma (ab units) below which a photo counts as grey.
GREY_CHROMA = 3.0
#: Long side the photos are kept at; crops are drawn after a random downscale from it.
KEEP_SIDE = 640
#: The served network sees the whole photo at a long side of SOLVE_SIDE (256): crops come from photos
#: scaled so their long side lies in this range, which holds that scale in the middle.
LONG_SIDE_RANGE = (160, 512)
#: Soft encoding of a target colour (Zhang et al.): its nearest bins, weighted by a Gaussian of this sigma.
SOFT_BINS = 5
SOFT_SIGMA = 5.0
#: Rebalancing: weights 1 / ((1 - mix) p + mix / Q) of the smoothed colour frequencies p.
REBALANCE_MIX = 0.5


@dataclass(frozen=True)
class Batch:
    planes: torch.Tensor  # N x 2 x crop x crop
    target: torch.Tensor  # N x 2 x crop/4 x crop/4, ab units


def colour_only(photos: list[np.ndarray]) -> list[np.ndarray]:
    """The colour photos among RGB `photos`, as H x W x 3 Lab (L 0..100, ab in CIELAB units)."""
    labs = [rgb_to_lab(rgb) * LAB_SCALE for rgb in photos]
    return [lab for lab in labs if np.hypot(lab[..., 1], lab[..., 2]).mean() >= GREY_CHROMA]


def training_photos(data_dir: Path, more_dir: Path) -> list[np.ndarray]:
    """The registry photos (`data_dir`: sources.py's) and GCompris's (`more_dir`: photos.py's) but its
    validation share."""
    registry = sources.load_all(sources.TRAIN + sources.EXTRA + sources.PORTRAITS, data_dir, KEEP_SIDE)
    return colour_only(registry + photos.load_all(more_dir, KEEP_SIDE, validation=False))


def validation_photos(data_dir: Path, more_dir: Path) -> list[np.ndarray]:
    """What the spread's weights are calibrated on (colourize.SCENE_WEIGHTS): VALIDATION_REGISTRY and GCompris's
    validation share."""
    return colour_only(sources.load_all(VALIDATION_REGISTRY, data_dir, KEEP_SIDE)
                       + photos.load_all(more_dir, KEEP_SIDE, validation=True))


def pooled_ab(lab: np.ndarray) -> np.ndarray:
    """H/STRIDE x W/STRIDE x 2: the ab the network's output grid stands for (area mean)."""
    height, width = lab.shape[0] // STRIDE, lab.shape[1] // STRIDE
    return cv2.resize(lab[: height * STRIDE, : width * STRIDE, 1:], (width, height), interpolation=cv2.INTER_AREA)


def sample(lab: np.ndarray, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(2 x crop x crop input, crop/4 x crop/4 x 2 target) from one photo, at a random scale, place and mirror."""
    long_side = rng.uniform(*LONG_SIDE_RANGE)
    scale = max(long_side / max(lab.shape[:2]), crop / min(lab.shape[:2]))
    size = (max(crop, round(lab.shape[1] * scale)), max(crop, round(lab.shape[0] * scale)))
    scaled = cv2.resize(lab, size, interpolation=cv2.INTER_AREA)
    top = int(rng.integers(0, scaled.shape[0] - crop + 1))
    left = int(rng.integers(0, scaled.shape[1] - crop + 1))
    patch = scaled[top:top + crop, left:left + crop]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    # Old prints render grey differently from CIELAB's L (film's spectral response, the print's contrast and
    # fog, grain): the lightness is jittered, the colour target is not.
    lightness = patch[..., 0] * rng.uniform(0.85, 1.15) + rng.uniform(-8, 8)
    lightness = lightness + rng.normal(0, rng.uniform(0, 3), lightness.shape)
    rows = np.arange(top, top + crop, dtype=np.float32) / max(scaled.shape[0] - 1, 1)
    planes = network_planes(np.clip(lightness, 0, 100), rows)
    return planes, pooled_ab(np.ascontiguousarray(patch))


def training_batch(photos: list[np.ndarray], crop: int, batch: int, seed: int, step: int) -> Batch:
    rng = np.random.default_rng([seed, step])
    drawn = [sample(photos[int(rng.integers(len(photos)))], crop, rng) for _ in range(batch)]
    planes = torch.from_numpy(np.stack([p for p, _ in drawn]))
    target = torch.from_numpy(np.stack([t for _, t in drawn]).transpose(0, 3, 1, 2).copy())
    return Batch(planes, target)


class ColourTargets:
    """Soft bin targets and the rebalancing weight of every target pixel."""

    def __init__(self, photos: list[np.ndarray]) -> None:
        self.bins = torch.from_numpy(ab_bins())
        counts = torch.zeros(len(self.bins), dtype=torch.float64)
        for lab in photos:
            scale = SOLVE_SIDE / max(lab.shape[:2])
            small = cv2.resize(lab, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            nearest = self.nearest(torch.from_numpy(pooled_ab(small)).reshape(-1, 2))
            counts += torch.bincount(nearest, minlength=len(self.bins)).double()
        frequency = counts / counts.sum()
        # Smoothed over neighbouring bins, so a colour the photos barely show is not weighted up without end.
        distances = torch.cdist(self.bins.double(), self.bins.double())
        smooth = torch.exp(-distances ** 2 / (2 * SOFT_SIGMA ** 2))
        frequency = (smooth / smooth.sum(1, keepdim=True)) @ frequency
        weights = 1.0 / ((1 - REBALANCE_MIX) * frequency + REBALANCE_MIX / len(self.bins))
        self.weights = (weights / (frequency * weights).sum()).float()

    def nearest(self, ab: torch.Tensor) -> torch.Tensor:
        return torch.cdist(ab.float(), self.bins).argmin(dim=1)

    def encode(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N x Q x h x w soft targets, N x h x w weights) from N x 2 x h x w ab."""
        n, _, h, w = target.shape
        flat = target.permute(0, 2, 3, 1).reshape(-1, 2)
        distances = torch.cdist(flat, self.bins)
        near, index = distances.topk(SOFT_BINS, dim=1, largest=False)
        gauss = torch.exp(-near ** 2 / (2 * SOFT_SIGMA ** 2))
        soft = torch.zeros(flat.shape[0], len(self.bins)).scatter_(1, index, gauss / gauss.sum(1, keepdim=True))
        weight = self.weights[index[:, 0]]
        return soft.reshape(n, h, w, -1).permute(0, 3, 1, 2), weight.reshape(n, h, w)
