"""A found crack followed across the stretch the network lost, and nothing traced where no ridge runs."""

from __future__ import annotations

import cv2
import numpy as np

from services.detector.crack_trace import continued, thinned


def grainy(height: int, width: int, level: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(level + rng.normal(0, 3, (height, width)), 0, 255)


def as_rgb(luma: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_thinning_leaves_a_one_pixel_line_as_long_as_the_stroke() -> None:
    stroke = np.zeros((40, 100), np.uint8)
    cv2.line(stroke, (10, 20), (90, 20), 1, thickness=5)
    skeleton = thinned(stroke.astype(bool))
    assert skeleton.sum(axis=0)[15:85].max() == 1  # one pixel across
    assert (skeleton.any(axis=0)).sum() >= 75  # nearly the stroke's whole length


def test_a_crack_is_followed_across_a_dark_brow_where_only_its_paper_shows() -> None:
    luma = grainy(120, 240, 150)
    luma[50:70, 90:150] = 70  # a dark band the crack crosses, as a brow
    cv2.line(luma, (10, 64), (230, 56), 215, thickness=2)  # the crack's paper, bright on both
    found = np.zeros(luma.shape, np.uint8)
    cv2.line(found, (10, 64), (230, 56), 12, thickness=1)  # over the band it still moved the network a little
    cv2.line(found, (10, 64), (85, 61), 255, thickness=3)  # the network saw it up to the band...
    cv2.line(found, (160, 58), (230, 56), 255, thickness=3)  # ...and after it
    result = continued(found, as_rgb(luma))
    added = (result >= 128) & (found < 128)
    assert added[:, 90:150].any(axis=0).all(), "the crack's stretch over the band is marked from end to end"
    near = np.zeros(luma.shape, np.uint8)
    cv2.line(near, (10, 64), (230, 56), 1, thickness=9)
    assert not (added & ~near.astype(bool)).any(), "along the crack, not over the band"


def test_a_line_of_the_picture_that_the_network_does_not_see_at_all_is_not_taken_for_the_crack() -> None:
    luma = grainy(120, 240, 150)
    cv2.line(luma, (10, 60), (230, 60), 215, thickness=2)  # a crack, then a railing in its line
    found = np.zeros(luma.shape, np.uint8)
    cv2.line(found, (10, 60), (99, 60), 255, thickness=3)
    result = continued(found, as_rgb(luma))
    assert (result[:, 110:] >= 128).sum() == 0


def test_a_crack_is_not_drawn_on_along_an_edge_that_is_no_ridge() -> None:
    luma = grainy(120, 240, 150)
    luma[60:, 100:] = 60  # a step: the edge of a dark coat, in the crack's line
    cv2.line(luma, (10, 60), (99, 60), 215, thickness=2)
    found = np.full(luma.shape, 12, np.uint8)  # however unsure the network is all over
    cv2.line(found, (10, 60), (99, 60), 255, thickness=3)
    result = continued(found, as_rgb(luma))
    assert (result[:, 105:] >= 128).sum() == 0


def test_a_photo_without_cracks_is_returned_as_it_was() -> None:
    luma = grainy(64, 64, 120)
    cv2.line(luma, (5, 30), (60, 30), 220, thickness=1)  # a ridge, but no crack was found to start from
    found = np.zeros(luma.shape, np.uint8)
    found[10, 10] = 100  # below the decision level
    assert np.array_equal(continued(found, as_rgb(luma)), found)
