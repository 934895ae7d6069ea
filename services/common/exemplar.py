"""Holes filled from the photo's own texture: exemplar-based inpainting (Criminisi, Pérez & Toyama 2004).

Diffusion fills (Telea, Navier-Stokes) are right for cracks a few pixels wide,
where the surroundings meet across the gap; across a torn corner or a lost
patch of emulsion they leave a smooth smear that reads as a blur in the middle
of grain, cloth or foliage. Here the hole is filled patch by patch from its
border inwards, each patch copied from the best-matching intact patch nearby,
in the order that continues strong edges first (the data term) from the
best-known places (the confidence term), so lines run on into the hole and
texture keeps its grain.

The search for each patch is one masked sum of squared differences over a
window around it (OpenCV's matchTemplate), so a hole of a few thousand pixels
takes a fraction of a second; larger holes are filled at a reduced scale by
the caller (services/common/inpainting.py).
"""

from __future__ import annotations

import cv2
import numpy as np

#: Side of the patches copied (pixels at the scale the hole is filled at).
PATCH = 7
#: Pixels around the patch being filled where its exemplar is looked for.
SEARCH = 40
#: Keeps the data term from silencing the confidence term on flat ground.
DATA_FLOOR = 1e-3


def exemplar_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`rgb` (HxWx3 uint8) with the `hole` pixels (HxW bool) copied from intact patches of the same photo.

    Best given with the hole already filled smoothly (e.g. Navier-Stokes): its gradients then give the
    isophotes at the hole's border. Patches are only ever copied from outside the hole.
    """
    if not hole.any():
        return rgb
    r = PATCH // 2
    image = cv2.copyMakeBorder(rgb, r, r, r, r, cv2.BORDER_REFLECT).astype(np.float32)
    unknown = np.pad(hole, r)
    # Centres of patches that lie wholly in the intact photo: the only sources.
    touched = cv2.boxFilter(unknown.astype(np.float32), -1, (PATCH, PATCH), normalize=False,
                            borderType=cv2.BORDER_CONSTANT)
    source = touched < 0.5
    source[:r], source[-r:], source[:, :r], source[:, -r:] = False, False, False, False
    confidence = (~unknown).astype(np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    height, width = unknown.shape
    kernel = np.ones((3, 3), np.uint8)
    while unknown.any():
        front = unknown & cv2.dilate((~unknown).astype(np.uint8), kernel).astype(bool)
        ys, xs = np.nonzero(front)
        if not len(ys):  # nothing known touches what is left (cannot happen with a non-empty source)
            break
        priority = _priorities(ys, xs, confidence, unknown, gx, gy)
        best = int(np.argmax(priority))
        y, x = int(np.clip(ys[best], r, height - r - 1)), int(np.clip(xs[best], r, width - r - 1))
        target = np.s_[y - r:y + r + 1, x - r:x + r + 1]
        missing = unknown[target]
        y0, y1 = max(r, y - SEARCH), min(height - r, y + SEARCH + 1)
        x0, x1 = max(r, x - SEARCH), min(width - r, x + SEARCH + 1)
        candidates = source[y0:y1, x0:x1]
        if not candidates.any():  # a hole wider than the search: look everywhere
            y0, y1, x0, x1 = r, height - r, r, width - r
            candidates = source[y0:y1, x0:x1]
        known = np.repeat((~missing)[..., None], 3, axis=2).astype(np.float32)
        distance = cv2.matchTemplate(image[y0 - r:y1 + r, x0 - r:x1 + r], image[target], cv2.TM_SQDIFF, mask=known)
        distance[~candidates] = np.inf
        qy, qx = np.unravel_index(int(np.argmin(distance)), distance.shape)
        qy, qx = qy + y0, qx + x0
        exemplar = image[qy - r:qy + r + 1, qx - r:qx + r + 1]
        image[target][missing] = exemplar[missing]
        gx[target][missing] = gx[qy - r:qy + r + 1, qx - r:qx + r + 1][missing]
        gy[target][missing] = gy[qy - r:qy + r + 1, qx - r:qx + r + 1][missing]
        confidence[target][missing] = confidence[target].sum() / PATCH ** 2
        unknown[target] = False
    filled = np.clip(image[r:-r, r:-r] + 0.5, 0, 255).astype(np.uint8)
    return np.where(hole[..., None], filled, rgb)


def _priorities(ys: np.ndarray, xs: np.ndarray, confidence: np.ndarray, unknown: np.ndarray,
                gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Criminisi's P = C * D at the front pixels: C the known share of the patch, D how strongly an isophote
    (an edge, turned 90 degrees) runs into the hole across its border."""
    r = PATCH // 2
    padded_c = np.pad(confidence, r)
    integral = cv2.integral(padded_c)
    y, x = ys + r, xs + r
    c = (integral[y + r + 1, x + r + 1] - integral[y - r, x + r + 1] - integral[y + r + 1, x - r]
         + integral[y - r, x - r]) / PATCH ** 2
    mask = cv2.GaussianBlur(unknown.astype(np.float32), (5, 5), 1.0)
    ny, nx = cv2.Sobel(mask, cv2.CV_32F, 0, 1, ksize=3)[ys, xs], cv2.Sobel(mask, cv2.CV_32F, 1, 0, ksize=3)[ys, xs]
    norm = np.hypot(nx, ny) + 1e-6
    # The isophote is the gradient turned 90 degrees: (-gy, gx).
    d = np.abs(-gy[ys, xs] * nx / norm + gx[ys, xs] * ny / norm) / (4 * 255.0)
    return c * (d + DATA_FLOOR)
