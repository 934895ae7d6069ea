"""Full-resolution output from the network's working-resolution prediction, in bounded memory.

The network sees the photo at a working resolution (long side `WORK_SIDE`)
and predicts restored Lab there. The full-resolution result is built the
way the fast guided filter upsamples (He & Sun 2015, "Fast Guided Filter";
Chen et al. 2016, bilateral guided upsampling): at working resolution, fit
per-pixel affine maps from the photo's own Lab (the guide) to the
prediction, then apply the upsampled maps to the full-resolution guide. So
tone, cast and chroma corrections land on the photo's full-resolution
detail and edges (chroma follows the photo's luminance edges when
colourizing), and where the model left a pixel alone the output keeps it.

Damaged pixels would drag the fit, so the guide is the photo with its masked
pixels (grown a pixel) filled at full resolution (`services/common/inpainting.py`:
Navier-Stokes for cracks, the photo's own patches for holes): the fill gives
the texture and edges, the model's prediction the tone and colour over it.

Everything at full resolution is done in horizontal strips (`services.common.resize.strips`):
besides the uint8 input, mask and output, memory stays at a few strips of
float planes whatever the photo's size (a 4096x4096 photo peaks well under
1 GB).
"""

from __future__ import annotations

import cv2
import numpy as np

from services.common.guided import apply_rows, box, guided_coefficients
from services.common.resize import strips, upsample_rows
from services.generator.planes import LAB_SCALE, lab_to_rgb, rgb_to_lab

#: Long side of the working resolution the network runs at.
WORK_SIDE = 384
#: Guided-filter window radius (working-resolution pixels) and regulariser (normalised Lab squared).
RADIUS = 2
EPS = 1e-4


#: Lightness range (CIELAB L between the LEVELS_PERCENTILES) a faded print is brought back to; a print whose
#: range is already this wide is left as it is. Real scans span 62-77 and photos of low-contrast things (a
#: brick wall, the moon) 34-45; a print faded to a third of its contrast spans about 26.
LEVELS_RANGE = 50.0
LEVELS_PERCENTILES = (1.0, 99.0)
#: Whole-photo fading score from which the detector's report calls a print faded (the real scans: 0.04-0.38).
FADED_PRINT = 0.4


def restored_levels(rgb: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """A print whose fading narrowed its lightness range, stretched back to LEVELS_RANGE (its chroma kept),
    `strength` (0..1) of the way.

    Why: the network corrects tone only where the detector marks fading, in patches, and a print faded as a
    whole stays flat: a group photo at a third of its contrast came back at half of it, its faces too faint for
    the face detector, and colour spread by lightness leaked across its flat edges. The stretch is linear and
    anchored at the print's highlights (fading lifts the blacks towards the paper's white), kept inside
    0..100; on the tuning repair bench that anchor kept 15.66 dB inside the damage where centring on the
    mid-tone lost 0.14 dB (15.56 without levels). It grows continuously from nothing at
    LEVELS_RANGE, so a print with its range is returned untouched. Its caller (RestorationInput.levelled)
    asks only for prints the detector calls faded (FADED_PRINT): a low-contrast subject is not a faded print.
    """
    small = downscale(rgb, working_size(*rgb.shape[:2]))
    lightness = rgb_to_lab(small)[..., 0] * LAB_SCALE[0]
    low, high = np.percentile(lightness, LEVELS_PERCENTILES)
    if high - low >= LEVELS_RANGE:
        return rgb
    middle = float(np.clip(high - LEVELS_RANGE / 2, LEVELS_RANGE / 2, 100.0 - LEVELS_RANGE / 2))
    gain = 1.0 + (LEVELS_RANGE / max(float(high - low), 1.0) - 1.0) * strength
    lab = rgb_to_lab(rgb)
    centre = (low + high) / 2
    lab[..., 0] = (centre + (middle - centre) * strength + (lab[..., 0] * LAB_SCALE[0] - centre) * gain) / LAB_SCALE[0]
    return lab_to_rgb(lab)


def working_size(height: int, width: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """(h, w) of the working resolution: the photo scaled so its long side is at most `side`."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average `pixels` to (h, w); unchanged when already that size."""
    if pixels.shape[:2] == size:
        return pixels
    return cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def compose(guide: np.ndarray, prediction_lab: np.ndarray | None, strength: float = 1.0, neutral: bool = False,
            where: np.ndarray | None = None) -> np.ndarray:
    """Full-resolution RGB uint8 from the damage-filled photo (`services.common.inpainting.fill_damage`) and the working-res prediction.

    `strength` (0..1) scales the model's correction (tone, cast and colour;
    the damage stays filled at any strength);
    `neutral` makes the result exactly grey. `where` (working resolution,
    0..1) limits the correction to where the detector found something to
    correct, so an intact photo, or an intact part of one, is left alone.
    No prediction (None): nothing to correct anywhere, the guide passes
    through (made grey if `neutral`), as a correction of zero amount would.
    """
    coefficients = None
    if prediction_lab is not None:
        small = rgb_to_lab(downscale(guide, prediction_lab.shape[:2]))
        coefficients = guided_coefficients(small, prediction_lab, RADIUS, EPS)
    out = np.empty_like(guide)
    for rows in strips(guide.shape[0]):
        lab = rgb_to_lab(guide[rows])
        if coefficients is not None:
            restored = apply_rows(lab, coefficients, rows, guide.shape[:2])
            amount = strength if where is None else strength * upsample_rows(where[..., None], rows, guide.shape[:2])
            lab = lab + amount * (restored - lab)
        rgb = lab_to_rgb(lab)
        # Exactly grey: Lab with zero chroma comes back with off-by-one channels.
        out[rows] = np.repeat(rgb[..., 1:2], 3, axis=2) if neutral else rgb
    return out


def chroma_onto(grey: np.ndarray, ab: np.ndarray, scale: float = 1.0, radius: int = RADIUS,
                eps: float = 1e-3) -> np.ndarray:
    """Full-resolution RGB: the lightness of `grey` (HxWx3 uint8, kept) with chroma `ab` (h x w x 2 CIELAB a, b
    at a lower resolution, times `scale`) brought up by a guided filter on that lightness.

    The grey guided filter (He et al. 2013) fits ab ~ alpha * L + beta in every window at the low resolution;
    the upsampled maps applied to the full-resolution L put each colour edge on the photo's own edges.
    """
    size = ab.shape[:2]
    lightness = rgb_to_lab(downscale(grey, size))[..., :1]
    mean_l, mean_ab = box(lightness, radius), box(ab, radius)
    covariance = box(lightness * ab, radius) - mean_l * mean_ab
    variance = box(lightness * lightness, radius) - mean_l * mean_l
    alpha = covariance / (variance + eps)
    beta = mean_ab - alpha * mean_l
    maps = box(np.concatenate([alpha, beta], axis=2), radius).astype(np.float32)
    # The fit is linear in L: in a window of skin, brows and shadow it extrapolates past every colour there
    # (dark brows turned blue). Each pixel's chroma stays within what the solve gave its neighbourhood.
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    bounds = np.concatenate([cv2.erode(ab, kernel), cv2.dilate(ab, kernel)], axis=2).astype(np.float32)
    out = np.empty_like(grey)
    for rows in strips(grey.shape[0]):
        lab = rgb_to_lab(grey[rows])
        full = upsample_rows(maps, rows, grey.shape[:2])
        low_high = upsample_rows(bounds, rows, grey.shape[:2])
        chroma = np.clip(full[..., :2] * lab[..., :1] + full[..., 2:], low_high[..., :2], low_high[..., 2:]) * scale
        out[rows] = lab_to_rgb(np.concatenate([lab[..., :1], chroma / LAB_SCALE[1:]], axis=2))
    return out
