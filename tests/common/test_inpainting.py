"""The damage fill chosen by width: diffusion for cracks, the photo's own patches for holes."""

from __future__ import annotations

import cv2
import numpy as np

from services.common.inpainting import HOLE_PIXELS, fill_damage, grown_for_fill, holes, with_rims


def stripes(height: int, width: int) -> np.ndarray:
    """Slanted black and white stripes: a texture a diffusion fill cannot continue and a patch copy can."""
    rows, cols = np.mgrid[0:height, 0:width]
    grey = ((np.sin((cols + 0.5 * rows) / 3.0) > 0) * 160 + 40).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def diffusion(damaged: np.ndarray, damage: np.ndarray) -> np.ndarray:
    return cv2.inpaint(damaged, cv2.dilate((damage > 0).astype(np.uint8), np.ones((3, 3), np.uint8)), 3,
                       cv2.INPAINT_NS)


def error_inside(filled: np.ndarray, truth: np.ndarray, damage: np.ndarray) -> float:
    return float(np.abs(filled.astype(np.float32) - truth)[damage > 0].mean())


def test_a_hole_in_a_texture_is_continued_from_the_texture():
    truth = stripes(200, 200)
    damage = np.zeros((200, 200), np.uint8)
    damage[80:120, 70:130] = 255
    damaged = truth.copy()
    damaged[damage > 0] = 255
    filled = fill_damage(damaged, damage)
    assert error_inside(filled, truth, damage) < 0.3 * error_inside(diffusion(damaged, damage), truth, damage)
    intact = cv2.dilate(damage, np.ones((3, 3), np.uint8)) == 0  # the fill takes the damage grown a pixel
    assert np.array_equal(filled[intact], damaged[intact])


def gradient(height: int, width: int) -> np.ndarray:
    """A smooth, grainless photo: nothing for the fill to add grain from."""
    grey = np.linspace(40, 220, width, dtype=np.float32)[None, :] + np.linspace(0, 20, height)[:, None]
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)


def test_cracks_are_no_holes_and_keep_the_diffusion_fill():
    damage = np.zeros((120, 160), np.uint8)
    cv2.line(damage, (5, 10), (150, 100), 255, 3)
    assert holes((damage > 0).astype(np.uint8)) == []
    photo = gradient(120, 160)
    # A grainless photo's "grain" is its rounding: at most a level from the diffusion fill.
    assert np.abs(fill_damage(photo, damage).astype(int) - diffusion(photo, damage)).max() <= 1


def test_a_crack_on_a_grainy_photo_is_filled_with_grain_like_the_photos_own():
    rng = np.random.default_rng(4)
    truth = np.clip(gradient(160, 200) + rng.normal(0, 6, (160, 200, 1)), 0, 255).astype(np.uint8)
    damage = np.zeros((160, 200), np.uint8)
    cv2.line(damage, (10, 20), (190, 140), 255, 3)
    damaged = truth.copy()
    damaged[damage > 0] = 250
    filled = fill_damage(damaged, damage)
    crack = cv2.dilate(damage, np.ones((3, 3), np.uint8)) > 0
    grey = filled[..., 0].astype(np.float32)
    high = grey - cv2.GaussianBlur(grey, (0, 0), 1.0)
    truth_high = truth[..., 0].astype(np.float32) - cv2.GaussianBlur(truth[..., 0].astype(np.float32), (0, 0), 1.0)
    smooth = diffusion(damaged, damage)[..., 0].astype(np.float32)
    smooth_high = smooth - cv2.GaussianBlur(smooth, (0, 0), 1.0)
    # The fill carries grain about as strong as the photo's, where diffusion alone leaves it smooth ...
    assert 0.6 < high[crack].std() / truth_high[~crack].std() < 1.5
    assert smooth_high[crack].std() < 0.5 * truth_high[~crack].std()
    # ... around the right tone, and the same on every call.
    assert abs(float(grey[crack].mean()) - float(truth[..., 0][crack].mean())) < 3
    assert np.array_equal(filled, fill_damage(damaged, damage))


def test_a_speck_is_grown_past_its_halo_and_a_crack_is_not():
    mask = np.zeros((60, 80), np.uint8)
    mask[10:13, 10:13] = 1  # a dust speck
    cv2.line(mask, (0, 40), (79, 45), 1, 1)  # a crack: long, however thin
    grown = grown_for_fill(mask)
    assert grown[8:15, 8:15].all() and not grown[7, 7]  # 1 pixel, then 1 more for a speck
    row = int(np.flatnonzero(mask[:, 30])[0])
    assert grown[row - 1:row + 2, 30].all() and not grown[row - 2, 30] and not grown[row + 2, 30]  # 1 only


def test_a_cracks_pale_rim_beyond_its_mask_is_filled_and_a_dark_edge_beside_it_is_kept():
    """A wide crack on a sepia print: the detector's mask holds its white core, its chipped sides stay pale
    a pixel or two beyond it. Filled from them, the crack came back as a grey ghost; the rim is filled too.
    Beside it a dark line of the photo (differing the other way) is not the crack's and stays."""
    sepia = np.array([90, 70, 40], np.float32)
    photo = np.tile(sepia, (60, 80, 1))
    photo[36:38, :] = sepia * 0.4  # a dark line of the photo below the crack
    damaged = photo.copy()
    damaged[28:31, :] = (235, 230, 215)  # the crack's paper-white core: the mask
    damaged[26:28, :] = damaged[31:33, :] = (160, 145, 115)  # its pale sides, unmasked
    mask = np.zeros((60, 80), np.uint8)
    mask[28:31, :] = 255
    damaged = damaged.astype(np.uint8)
    grown = grown_for_fill((mask >= 128).astype(np.uint8))
    grown |= with_rims(damaged, grown, grown)
    assert grown[26:33, 10:70].all() and not grown[36:38, 10:70].any()
    filled = fill_damage(damaged, mask).astype(np.float32)
    assert np.abs(filled[25:34, 10:70] - sepia).max() < 12
    assert np.abs(filled[36:38, 10:70] - sepia * 0.4).max() < 2


def test_a_torn_corner_and_a_hole_larger_than_the_budget_are_filled_with_texture():
    truth = stripes(400, 400)
    damage = np.zeros((400, 400), np.uint8)
    damage[:90, :90] = 255  # the corner, torn off
    cv2.circle(damage, (260, 260), 70, 255, -1)  # ~15 000 pixels: filled at a reduced scale
    assert (damage > 0).sum() - 8100 > HOLE_PIXELS
    damaged = truth.copy()
    damaged[damage > 0] = 255
    filled = fill_damage(damaged, damage)
    inside = damage > 0
    assert (filled[inside] == 255).all(axis=1).mean() < 0.01  # nothing left blank
    grey = filled[..., 0].astype(np.float32)
    texture = np.sqrt(cv2.blur(grey ** 2, (7, 7)) - cv2.blur(grey, (7, 7)) ** 2)
    smooth = diffusion(damaged, damage)[..., 0].astype(np.float32)
    smooth_texture = np.sqrt(np.maximum(cv2.blur(smooth ** 2, (7, 7)) - cv2.blur(smooth, (7, 7)) ** 2, 0))
    core = cv2.erode(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    assert texture[core].mean() > 2 * smooth_texture[core].mean()
