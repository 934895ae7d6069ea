"""Training batches and the fixed held-out set: random crops of clean photos, aged synthetically.

A few dozen photos make unlimited samples because every crop position,
scale, flip and damage draw is new. Each batch is drawn from its own
generator seeded by (seed, step), so a resumed run sees exactly the batches
an uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from services.detector.engine import DAMAGE_TYPES
from training.common import gcompris_photos, sources
from training.detector.synthetic_damage import (
    CROSSING_SCAN,
    EDGED_SCAN,
    FAINT_SCAN,
    FIBRED_SCAN,
    LETTERED_SCAN,
    REAL_SCAN,
    DamageParams,
    DamageSample,
    DamageSynthesizer,
)

#: Share of samples left undamaged (scan artefacts only): negatives against false alarms.
UNDAMAGED_SHARE = 0.25
#: Range of downscaling before cropping: photos of many resolutions.
SCALE_RANGE = (0.5, 1.0)
#: The same for the crops --portrait-share draws from portraits: down to a whole face in a small print (a
#: 256 px scan of a head and shoulders), where the committed models saw faces only larger than a crop.
PORTRAIT_SCALE_RANGE = (0.15, 1.0)


#: Registry photos that choose the thresholds (export.calibrate): trained on by no run, and not the benchmark's.
#: One photo (a street scene, scikit-learn's china.jpg): the registry packages hold few photos, and every other
#: goes to training or to the benchmark. load_validation_photos adds GCompris's validation share to it.
VALIDATE = tuple(photo for photo in sources.EXTRA if photo.path.endswith("images/china.jpg"))
#: Training photos per set name: "base" is what the first models used; "wide" adds the other EXTRA
#: photos (a portrait among them), so damage lands on more kinds of content; "people" adds PORTRAITS,
#: so cracks also cross faces, skin and hair; "broad" is "people" plus GCompris's training share
#: (WITH_GCOMPRIS): monuments, animals and landscapes, more kinds of content to tell damage from.
WIDE = sources.TRAIN + tuple(photo for photo in sources.EXTRA if photo not in VALIDATE)
PHOTO_SETS = {"base": sources.TRAIN, "wide": WIDE, "people": WIDE + sources.PORTRAITS,
              "broad": WIDE + sources.PORTRAITS}
WITH_GCOMPRIS = frozenset({"broad"})
#: The training photos of people, which --portrait-share draws from.
PORTRAITS = sources.PORTRAITS + tuple(photo for photo in sources.EXTRA if photo.path.endswith("grace_hopper.jpg"))
#: Damage recipes by name: "default" reproduces the recorded models' data, "real" is REAL_SCAN, "lettered"
#: REAL_SCAN over photos that sometimes carry lettering of their own, "faint" that with a third of the crack
#: networks faint, "edged" that with some networks opening along the photo's own edges, "crossing" that with
#: some cracks crossing the photo's dark thin features, "fibred" "lettered" with dust fibres and hairs.
DAMAGE = {"default": DamageParams(), "real": REAL_SCAN, "lettered": LETTERED_SCAN, "faint": FAINT_SCAN,
          "edged": EDGED_SCAN, "crossing": CROSSING_SCAN, "fibred": FIBRED_SCAN}


@dataclass
class Batch:
    #: N x 3 x H x W float32 in 0..1.
    images: np.ndarray
    #: N x 4 x H x W float32 0/1, DAMAGE_TYPES order.
    masks: np.ndarray
    #: N x 2 float32: fading score, grayscale (0/1).
    scores: np.ndarray


def training_photos(name: str, gcompris_dir: Path) -> tuple[sources.Photo, ...]:
    """The photos of set `name`: its registry photos, and for WITH_GCOMPRIS sets GCompris's training share (the
    validation share stays out of every model's training)."""
    extra = gcompris_photos.share(gcompris_dir, validation=False) if name in WITH_GCOMPRIS else ()
    return PHOTO_SETS[name] + extra


def load_validation_photos(data_dir: Path, gcompris_dir: Path) -> tuple[tuple[sources.Photo, ...], list[np.ndarray]]:
    """The photos thresholds are chosen on, and their pixels: VALIDATE and GCompris's validation share (14
    monuments and animals no run trains on). One photo alone let a single smooth sky set the fading threshold
    (phase 10: 0.4, and 1.77% of a clean portrait flagged)."""
    extra = gcompris_photos.share(gcompris_dir, validation=True)
    return VALIDATE + extra, sources.load_all(VALIDATE, data_dir) + gcompris_photos.load_all(gcompris_dir, 1024,
                                                                                               validation=True)


def load_training_photos(name: str, data_dir: Path, gcompris_dir: Path) -> list[np.ndarray]:
    registry = sources.load_all(PHOTO_SETS[name], data_dir)
    if name not in WITH_GCOMPRIS:
        return registry
    return registry + gcompris_photos.load_all(gcompris_dir, 1024, validation=False)


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator, turn: bool = True,
                scale_range: tuple[float, float] = SCALE_RANGE) -> np.ndarray:
    """A `size` square from `photo` at a random scale, mirrored or not, and (with `turn`) a quarter turn:
    training wants every orientation, a benchmark of scans wants them upright."""
    scale = rng.uniform(*scale_range)
    side = min(int(round(size / scale)), *photo.shape[:2])
    y = int(rng.integers(0, photo.shape[0] - side + 1))
    x = int(rng.integers(0, photo.shape[1] - side + 1))
    crop = photo[y:y + side, x:x + side]
    if side != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(np.rot90(crop, int(rng.integers(0, 4))) if turn else crop)


def to_arrays(samples: Sequence[DamageSample]) -> Batch:
    images = np.stack([s.damaged for s in samples]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    masks = np.stack([[s.masks[kind] for kind in DAMAGE_TYPES] for s in samples]).astype(np.float32) / 255.0
    scores = np.array([[s.fading_score, float(s.grayscale)] for s in samples], np.float32)
    return Batch(images, masks, scores)


def training_batch(photos: Sequence[np.ndarray], synth: DamageSynthesizer, size: int, batch: int,
                   seed: int, step: int, undamaged: float = UNDAMAGED_SHARE,
                   portraits: Sequence[np.ndarray] = (), portrait_share: float = 0.0) -> Batch:
    """`portrait_share` of the crops come from `portraits` at PORTRAIT_SCALE_RANGE, so damage crosses whole
    faces at the scale of small prints; with 0 the draws are exactly those of the runs before it existed."""
    rng = np.random.default_rng([seed, step])
    samples = []
    for _ in range(batch):
        if portrait_share and rng.random() < portrait_share:
            photo = portraits[int(rng.integers(0, len(portraits)))]
            crop = random_crop(photo, size, rng, scale_range=PORTRAIT_SCALE_RANGE)
        else:
            crop = random_crop(photos[int(rng.integers(0, len(photos)))], size, rng)
        samples.append(synth(crop, rng, undamaged=rng.random() < undamaged))
    return to_arrays(samples)


def held_out_samples(photos: Sequence[np.ndarray], count: int, size: int, seed: int = 2026,
                     params: DamageParams | None = None) -> list[DamageSample]:
    """A fixed synthetic evaluation set: every sample damaged, photos taken in turn."""
    synth = DamageSynthesizer(params)
    samples = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        samples.append(synth(random_crop(photos[index % len(photos)], size, rng), rng))
    return samples
