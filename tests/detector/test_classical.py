"""The classical detector on real photos: what it must leave alone and what it must find."""

from __future__ import annotations

import numpy as np
import pytest
from revive.v1 import common_pb2

from services.detector.engines.classical import ClassicalDetector
from tests.photos import portrait
from training.detector.scoring import flagged_fraction
from training.upscaler import heldout


@pytest.fixture(scope="module")
def detector() -> ClassicalDetector:
    return ClassicalDetector()


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_intact_photos_are_mostly_left_alone(detector, name):
    """A white spacesuit and the folds in it are not missing paper and scratches (it once flagged 19%)."""
    assert flagged_fraction(detector.detect(heldout.load(name)).masks) < 0.03


def paper(rgb: np.ndarray, region: tuple[slice, slice], seed: int = 0) -> np.ndarray:
    """Blank, slightly yellowed, grainy paper where `region` is."""
    out = rgb.copy()
    grain = np.random.default_rng(seed).normal(0, 3, out[region].shape[:2])[..., None]
    out[region] = np.clip(np.array([236, 230, 212]) + grain, 0, 255).astype(np.uint8)
    return out


def test_missing_corner_is_a_tear(detector):
    photo = paper(portrait(), (slice(0, 150), slice(0, 120)))
    tear = detector.detect(photo).masks[common_pb2.TEAR] >= 128
    assert tear[10:140, 10:110].mean() > 0.95
    assert tear[300:, 200:].mean() == 0


def test_pale_area_inside_the_photo_is_not_a_tear(detector):
    """Paper goes missing from edges; an even pale patch in the middle is more likely a white shirt."""
    photo = paper(portrait(), (slice(250, 400), slice(150, 330)))
    assert not (detector.detect(photo).masks[common_pb2.TEAR] >= 128).any()
