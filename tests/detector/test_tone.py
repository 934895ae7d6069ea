"""The black-and-white verdict: grey and toned prints are black-and-white; colour stays colour, however
faded, muted or hand-applied, so that colorize=auto never paints over a photo's own colours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from services.detector.engines.unet import UNetDetector
from services.detector.service import DEFINITION as DETECTOR
from services.detector.tone import grayscale_score
from tests.photos import portrait
from training.detector.synthetic_damage import DamageSynthesizer

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real-photos"


def grey(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def toned(rgb: np.ndarray, strength: float = 0.9) -> np.ndarray:
    return (DamageSynthesizer._sepia(grey(rgb).astype(np.float32) / 255, strength) * 255).astype(np.uint8)


def test_grey_and_sepia_prints_are_black_and_white():
    photo = portrait(480, 600)
    assert grayscale_score(grey(photo)) >= 0.5
    assert grayscale_score(toned(photo)) >= 0.5
    noisy = np.clip(toned(photo).astype(int) + np.random.default_rng(1).normal(0, 4, photo.shape), 0, 255)
    assert grayscale_score(noisy.astype(np.uint8)) >= 0.5  # grain is not colour


def test_colour_stays_colour_even_faded_or_hand_coloured():
    photo = portrait(480, 600)
    assert grayscale_score(photo) < 0.5
    cream = np.array([242, 230, 190], np.float32)
    faded = (photo * 0.35 + cream * 0.65).astype(np.uint8)  # an early colour print, most of its colour gone
    assert grayscale_score(faded) < 0.5
    # A hand-coloured print: a toned print with its lips and cheeks painted.
    painted = toned(photo).astype(np.float32)
    height, width = photo.shape[:2]
    for (cx, cy), colour in (((width // 2, height * 2 // 3), (190, 70, 70)), ((width // 3, height // 2), (210, 140, 120)),
                             ((width // 2, height // 5), (70, 110, 170))):
        mask = np.zeros((height, width), np.float32)
        cv2.ellipse(mask, (cx, cy), (width // 5, height // 8), 0, 0, 360, 1.0, -1)
        painted = painted * (1 - 0.5 * mask[..., None]) + np.array(colour, np.float32) * 0.5 * mask[..., None]
    assert grayscale_score(painted.astype(np.uint8)) < 0.5


def test_a_sepia_print_under_faint_stains_is_judged_on_what_is_intact():
    """Faint stains and yellowing over a third of a black-and-white print outvote the median, and the print
    seemed colour. Left out where the detector found them, the print is the toned one it is; a colour photo
    stays colour whatever is left out, and past MIN_INTACT of damage all of it is judged. Strong stains over
    that much of it still make it colour: when in doubt, `auto` keeps a photo's colours."""
    photo = portrait(480, 600)
    damage = np.zeros(photo.shape[:2], np.uint8)
    rng = np.random.default_rng(4)
    for _ in range(60):
        centre = (int(rng.integers(0, photo.shape[1])), int(rng.integers(0, photo.shape[0])))
        cv2.circle(damage, centre, int(rng.integers(15, 35)), 255, -1)
    tint = np.array([150, 95, 40], np.float32) * (1 + rng.random((photo.shape[0], photo.shape[1], 1)) * 0.4)
    stain = (damage > 0)[..., None]
    assert 0.25 < stain.mean() < 0.5

    def stained(opacity: float) -> np.ndarray:
        return np.where(stain, toned(photo) * (1 - opacity) + tint * opacity, toned(photo)).astype(np.uint8)

    assert grayscale_score(stained(0.13)) < 0.5
    assert grayscale_score(stained(0.13), damage) >= 0.5
    assert grayscale_score(stained(0.6), damage) < 0.5
    assert grayscale_score(photo, damage) < 0.5
    everywhere = np.full(photo.shape[:2], 255, np.uint8)
    assert grayscale_score(stained(0.13), everywhere) == grayscale_score(stained(0.13))


def test_colour_the_detector_took_for_damage_still_counts():
    """A garden: foliage in one green tint from shadow to highlight, and flowers of several colours over a
    third of it that the detector flagged as specks. Judged only outside what it found, the garden was one tint
    and `auto` painted over it (a real autochrome's daisies were found so); the whole photo's upper quartile
    still sees the flowers."""
    rng = np.random.default_rng(7)
    height, width = 600, 480
    shade = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 6)
    lightness = 40 + 140 * (shade - shade.min()) / (shade.max() - shade.min())
    garden = np.stack([lightness * 0.92, lightness, lightness * 0.7], axis=2)
    flowers = np.zeros((height, width), np.uint8)
    for _ in range(140):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(flowers, centre, int(rng.integers(10, 22)), int(rng.integers(1, 4)), -1)
    assert 0.3 < (flowers > 0).mean() < 0.5
    for label, colour in ((1, (230, 90, 110)), (2, (240, 220, 120)), (3, (150, 120, 220))):
        garden[flowers == label] = colour
    photo = np.clip(garden, 0, 255).astype(np.uint8)
    found = (flowers > 0).astype(np.uint8) * 255
    assert grayscale_score(photo, found) < 0.5


@pytest.mark.skipif(not (REAL / "old_b.png").exists(), reason="needs ../shared/real-photos")
def test_real_scans_an_autochrome_is_colour_and_a_cracked_print_black_and_white():
    """The verdict as the learned engine serves it (its damage left out), on two real scans it was never
    tuned on: the autochrome `old_b` keeps its colours, the cracked black-and-white boy is colourized."""
    detector = UNetDetector(DETECTOR.parse(["--threads", "2", "--providers", "cpu"]))
    autochrome = np.asarray(Image.open(REAL / "old_b.png").convert("RGB"))
    cracked = np.asarray(Image.open(REAL / "old_w_scratch_b.png").convert("RGB"))
    assert not detector.detect(autochrome).is_grayscale
    assert detector.detect(cracked).is_grayscale
