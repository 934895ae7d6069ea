"""The scene colour network as served: any size in, its size out, a sky and a meadow it can tell in grey, and
the calibration the colourizer weighs it by."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from services.common.runtime import RuntimeOptions
from services.generator import colourize
from services.generator.planes import LAB_SCALE, rgb_to_lab
from services.vision.scene_colour import MODEL_FILE, SceneColourPrior, candidate_tilt
from tests.generator.test_learned import MODELS
from training.colour_prior.calibrate import non_increasing
from training.colour_prior.dataset import ColourTargets
from training.colour_prior.model import AnnealedMean, ab_bins

SCENES = Path(__file__).resolve().parents[1] / "data" / "scenes"


@pytest.fixture(scope="module")
def prior() -> SceneColourPrior:
    return SceneColourPrior(MODELS / MODEL_FILE, RuntimeOptions(threads=1))


@pytest.mark.parametrize("size", [(37, 53), (192, 256), (8, 300)])
def test_any_size_comes_back_at_its_size(prior, size):
    rng = np.random.default_rng(0)
    ab, spread = prior.predict(rng.uniform(0, 100, size).astype(np.float32))
    assert ab.shape == (*size, 2) and spread.shape == size
    assert np.isfinite(ab).all() and (spread >= 0).all() and (np.abs(ab) <= 110).all()


def scene(name: str) -> np.ndarray:
    """A validation photo (tests/data/scenes) as H x W x 3 Lab: L 0..100, ab in CIELAB units."""
    rgb = cv2.cvtColor(cv2.imread(str(SCENES / name)), cv2.COLOR_BGR2RGB)
    return rgb_to_lab(rgb) * LAB_SCALE


def test_a_castle_sky_reads_blue_and_a_meadow_green_from_grey_alone(prior):
    castle = scene("neuschwanstein.jpg")
    ab, _ = prior.predict(castle[..., 0])
    sky = slice(0, castle.shape[0] // 5)
    assert ab[sky, :, 1].mean() < -20  # the truth: b -36
    meadow = scene("pig.jpg")
    ab, _ = prior.predict(meadow[..., 0])
    assert ab[..., 0].mean() < -8 and ab[..., 1].mean() > 15  # the truth: a -18, b 30


class Known(torch.nn.Module):
    """Logits of a known distribution over the bins, the same at every place: the decoding alone under test."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(logits.astype(np.float32)).view(1, -1, 1, 1)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(planes.shape[0], -1, 2, 2)


def nearest_bin(bins: np.ndarray, ab: tuple[float, float]) -> int:
    return int(np.argmin(np.linalg.norm(bins - np.float32(ab), axis=1)))


def decoded(logits: np.ndarray, tilt: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(a, b, spread) that AnnealedMean serves for this distribution, tilted by `tilt`."""
    out = AnnealedMean(Known(logits), ab_bins()).eval()(torch.zeros(1, 2, 8, 8), torch.tensor([tilt]))
    return out[0, :, 0, 0].detach().numpy()


def test_decoding_a_sure_distribution_gives_its_bin_and_no_spread_whatever_the_tilt():
    bins = ab_bins()
    logits = np.full(len(bins), -30.0)
    logits[nearest_bin(bins, (-20, 30))] = 30.0
    for tilt in ((0.0, 0.0), (0.08, -0.08)):
        out = decoded(logits, tilt)
        np.testing.assert_allclose(out[:2], bins[nearest_bin(bins, (-20, 30))], atol=1e-3)
        assert out[2] < 0.01


def test_a_tilt_chooses_between_plausible_answers_and_never_a_far_fetched_one():
    bins = ab_bins()
    grass, brick, blue = (nearest_bin(bins, ab) for ab in ((-30, 30), (30, 20), (0, -50)))
    logits = np.full(len(bins), -30.0)
    logits[[grass, brick]] = 5.0  # either is as likely
    logits[blue] = 5.0 + np.log(0.1)  # ten times less likely: not plausible
    towards_brick, towards_grass = decoded(logits, (0.04, 0.0)), decoded(logits, (-0.04, 0.0))
    assert towards_brick[0] > 15 and towards_grass[0] < -15
    towards_blue = decoded(logits, (0.0, -0.2))
    assert towards_blue[1] > 15  # grass or brick (b 20-30), not the blue bin's -50
    # The spread is the untilted distribution's: how much the colour counts does not depend on the candidate.
    assert towards_brick[2] == pytest.approx(towards_grass[2]) == pytest.approx(decoded(logits)[2])


def test_candidates_tilt_towards_well_spread_hues_and_no_tilt_is_the_best_guess(prior):
    angles = [np.degrees(np.arctan2(*candidate_tilt(seed)[::-1])) % 360 for seed in range(1, 5)]
    gaps = [min(abs(a - b), 360 - abs(a - b)) for i, a in enumerate(angles) for b in angles[i + 1:]]
    assert min(gaps) > 30
    lightness = scene("pig.jpg")[..., 0]
    plain, _ = prior.predict(lightness)
    np.testing.assert_array_equal(plain, prior.predict(lightness, np.zeros(2, np.float32))[0])
    assert np.abs(prior.predict(lightness, candidate_tilt(1))[0] - plain).mean() > 1.0


def test_targets_put_most_weight_on_the_nearest_bin_and_rare_colours_weigh_more():
    bins = ab_bins()
    photos = [np.dstack([np.full((64, 64), 50.0), np.full((64, 64), 2.0), np.full((64, 64), 3.0)]).astype(np.float32)]
    targets = ColourTargets(photos)  # every pixel near grey: grey is common, saturated red rare
    ab = torch.tensor([[2.0, 3.0], [60.0, 40.0]]).view(2, 2, 1, 1)
    soft, weight = targets.encode(ab)
    assert torch.allclose(soft.sum(1), torch.ones(2, 1, 1))
    for index, colour in enumerate(([2.0, 3.0], [60.0, 40.0])):
        nearest = int(np.argmin(np.linalg.norm(bins - np.float32(colour), axis=1)))
        assert int(soft[index, :, 0, 0].argmax()) == nearest
    assert weight[1] > 2 * weight[0]


def test_the_colourizer_weighs_the_network_as_the_export_calibrated_it():
    calibration = json.loads((MODELS / MODEL_FILE.parent / "manifest.json").read_text())["eval"]["spread_calibration"]
    assert colourize.SCENE_WEIGHTS == tuple(tuple(point) for point in calibration["weights"])


def test_calibrated_weights_never_rise_with_the_spread_and_thin_bins_give_way():
    assert non_increasing([1.0, 0.5, 0.0], [1, 1, 1]) == [1.0, 0.5, 0.0]
    # A thin wide-spread bin that claims trust is pooled into its neighbour, not kept.
    assert non_increasing([0.8, 0.2, 0.9], [0.5, 0.45, 0.05]) == [0.8, 0.27, 0.27]
