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


def test_a_sepia_print_under_brown_stains_is_judged_on_what_is_intact():
    """Stains and foxing colour a black-and-white print: spread over much of it they outvote the median, and
    the print seemed colour. Left out where the detector found them, the print is the toned one it is; a
    colour photo stays colour whatever is left out, and past MIN_INTACT of damage all of it is judged."""
    photo = portrait(480, 600)
    stained = toned(photo).astype(np.float32)
    damage = np.zeros(photo.shape[:2], np.uint8)
    rng = np.random.default_rng(4)
    for _ in range(60):
        centre = (int(rng.integers(0, photo.shape[1])), int(rng.integers(0, photo.shape[0])))
        cv2.circle(damage, centre, int(rng.integers(15, 35)), 255, -1)
    tint = np.array([150, 95, 40], np.float32) * (1 + rng.random((photo.shape[0], photo.shape[1], 1)) * 0.4)
    stain = (damage > 0)[..., None]
    stained = np.where(stain, stained * 0.4 + tint * 0.6, stained).astype(np.uint8)
    assert 0.25 < stain.mean() < 0.5
    assert grayscale_score(stained) < 0.5
    assert grayscale_score(stained, damage) >= 0.5
    assert grayscale_score(photo, damage) < 0.5
    everywhere = np.full(photo.shape[:2], 255, np.uint8)
    assert grayscale_score(stained, everywhere) == grayscale_score(stained)


def test_an_autochrome_whose_colour_is_a_quarter_of_it_is_colour():
    """A garden whose foliage is one green tint from shadow to highlight, and a woman's dress, faded to a little
    bluer than the foliage, over a quarter of the photo, in the lightness the foliage also has: by the median pixel the photo is one
    tint, and `auto` painted over its colours (a real autochrome was judged so)."""
    rng = np.random.default_rng(7)
    height, width = 600, 480
    shade = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 6)
    lightness = 40 + 140 * (shade - shade.min()) / (shade.max() - shade.min())
    foliage = np.stack([lightness * 0.92, lightness, lightness * 0.7], axis=2)
    dress = np.zeros((height, width), bool)
    dress[int(height * 0.35):, int(width * 0.3):int(width * 0.8)] = True
    assert 0.25 < dress.mean() < 0.35
    blue = np.stack([lightness * 0.92, lightness * 1.0, lightness * 0.74], axis=2)  # faded: a little bluer
    photo = np.clip(np.where(dress[..., None], blue, foliage), 0, 255).astype(np.uint8)
    assert grayscale_score(photo) < 0.5
    assert grayscale_score(np.clip(foliage, 0, 255).astype(np.uint8)) >= 0.5  # the foliage alone: one tint


@pytest.mark.skipif(not (REAL / "old_b.png").exists(), reason="needs ../shared/real-photos")
def test_real_scans_an_autochrome_is_colour_and_a_cracked_print_black_and_white():
    """The verdict as the learned engine serves it (its damage left out), on two real scans it was never
    tuned on: the autochrome `old_b` keeps its colours, the cracked black-and-white boy is colourized."""
    detector = UNetDetector(DETECTOR.parse(["--threads", "2", "--providers", "cpu"]))
    autochrome = np.asarray(Image.open(REAL / "old_b.png").convert("RGB"))
    cracked = np.asarray(Image.open(REAL / "old_w_scratch_b.png").convert("RGB"))
    assert not detector.detect(autochrome).is_grayscale
    assert detector.detect(cracked).is_grayscale
