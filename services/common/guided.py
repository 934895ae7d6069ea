"""The guided filter's fit (He, Sun & Tang 2013): per-pixel affine maps from a guide image to a target.

Fitted at a low resolution and applied to a high-resolution guide, the maps carry
the target's tone and colour onto the guide's full detail (He & Sun 2015, "Fast
Guided Filter"): the generator composes candidates this way, and the upscaler
carries one candidate's super-resolution onto its siblings.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.common.resize import upsample_rows


def box(field: np.ndarray, radius: int) -> np.ndarray:
    """Window mean of every channel of an h x w x C... array."""
    flat = field.reshape(field.shape[0], field.shape[1], -1)
    means = [cv2.blur(np.ascontiguousarray(flat[..., c]), (2 * radius + 1, 2 * radius + 1),
                      borderType=cv2.BORDER_REFLECT) for c in range(flat.shape[2])]
    return np.stack(means, axis=-1).reshape(field.shape)


def guided_coefficients(guide: np.ndarray, target: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """h x w x 4 x 3: per pixel, the affine map (3x3 matrix rows, then offset) with target ~ guide @ A + b.

    The colour guided filter: least squares over each window, ridge-regularised by `eps`, then
    window-averaged.
    """
    mean_i = box(guide, radius)
    mean_p = box(target, radius)
    cov_ip = box(guide[..., :, None] * target[..., None, :], radius) - mean_i[..., :, None] * mean_p[..., None, :]
    var_i = box(guide[..., :, None] * guide[..., None, :], radius) - mean_i[..., :, None] * mean_i[..., None, :]
    var_i = var_i + eps * np.eye(3, dtype=np.float32)
    a = solve_symmetric3(var_i, cov_ip)
    b = mean_p - np.einsum("hwk,hwkc->hwc", mean_i, a)
    return box(np.concatenate([a, b[..., None, :]], axis=2), radius).astype(np.float32)


def solve_symmetric3(matrices: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x with matrices @ x = rhs, for per-pixel symmetric positive-definite 3x3 `matrices` (... x 3 x 3)
    and ... x 3 x C right-hand sides: by the adjugate, in float64. Batched LAPACK spends about ten times
    as long on a photo's worth of 3x3 systems, and the fit runs once per candidate."""
    m = matrices.astype(np.float64)
    a, b, c, d, e, f = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2], m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    cofactors = (d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b)
    aa, ab, ac, bb, bc, cc = cofactors
    adjugate = np.stack([np.stack([aa, ab, ac], -1), np.stack([ab, bb, bc], -1), np.stack([ac, bc, cc], -1)], -2)
    determinant = a * aa + b * ab + c * ac
    return (adjugate @ rhs.astype(np.float64) / determinant[..., None, None]).astype(rhs.dtype)


def apply_rows(guide_rows: np.ndarray, coefficients: np.ndarray, rows: slice, size: tuple[int, int]) -> np.ndarray:
    """The maps (h x w x 4 x 3, from `guided_coefficients`) bilinearly brought to `size` and applied to the
    rows `rows` of a guide of that size (`guide_rows`, those rows, float)."""
    flat = coefficients.reshape(coefficients.shape[0], coefficients.shape[1], 12)
    maps = upsample_rows(flat, rows, size).reshape(guide_rows.shape[0], guide_rows.shape[1], 4, 3)
    return np.einsum("hwk,hwkc->hwc", guide_rows, maps[:, :, :3]) + maps[:, :, 3]
