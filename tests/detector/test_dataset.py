"""Training batches: the portrait share draws its crops from the portraits, down to the whole photo, and a
share of 0 leaves every recorded run's batches as they were."""

from __future__ import annotations

import numpy as np

from training.detector.dataset import training_batch
from training.detector.synthetic_damage import DamageParams, DamageSynthesizer

#: No tone, fade or scan stage: what comes out is the crop itself.
PLAIN = DamageParams(p_grayscale=0.0, p_global_fade=0.0, p_optics_blur=0.0, p_grain=0.0, p_noise=0.0, p_jpeg=0.0,
                     p_scan_blur=0.0, p_halftone=0.0)


def marked(height: int = 600, width: int = 480) -> np.ndarray:
    """Grey, with a red band down its left edge and a blue band down its right: a crop holding both holds the
    photo's whole width."""
    photo = np.full((height, width, 3), 128, np.uint8)
    photo[:, :24] = (255, 0, 0)
    photo[:, -24:] = (0, 0, 255)
    return photo


def holds_both_edges(image: np.ndarray) -> bool:
    red, _, blue = image
    return bool(((red > 0.8) & (blue < 0.2)).any() and ((blue > 0.8) & (red < 0.2)).any())


def test_the_portrait_share_takes_its_crops_from_the_portraits_down_to_the_whole_photo():
    dark, face = [np.full((900, 900, 3), 20, np.uint8)], [marked()]
    synth = DamageSynthesizer(PLAIN)
    faces = training_batch(dark, synth, 128, 32, seed=3, step=0, undamaged=1.0, portraits=face, portrait_share=1.0)
    assert (faces.images.reshape(32, -1).mean(axis=1) > 0.3).all()  # never the dark photo
    assert sum(holds_both_edges(image) for image in faces.images) >= 4  # a whole small print's head, often
    none = training_batch(dark, synth, 128, 16, seed=3, step=0, undamaged=1.0, portraits=face, portrait_share=0.0)
    plain = training_batch(dark, synth, 128, 16, seed=3, step=0, undamaged=1.0)
    np.testing.assert_array_equal(none.images, plain.images)
    scenes = training_batch(face, synth, 128, 32, seed=3, step=0, undamaged=1.0)
    assert not any(holds_both_edges(image) for image in scenes.images)  # ordinary crops never zoom out that far
