"""Black-and-white or colour: whether the photo's chroma is one tint that follows its lightness.

A black-and-white print is grey, or toned (sepia, selenium, a yellowed
paper): its chroma is a function of its lightness, one hue line from the
shadows to the highlights. A colour photo's chroma changes independently of
lightness, from region to region; so does a hand-coloured photo's, or an
autochrome's, however faded or muted. So the verdict removes, per lightness
level, the photo's mean chroma (its tint), and measures what chroma is left:
a high percentile (RESIDUAL_PERCENTILE) of the distance (in Cr/Cb levels)
after a blur that takes out grain and JPEG colour noise. Not the mean:
stains and foxing colour small parts of many black-and-white prints. Not the
median: an autochrome's colour can sit in a quarter of it (a woman's pale
blue dress in a garden whose dark foliage is one green tint from shadow to
highlight), and the median called it black-and-white, so `auto` painted over
its colours. Only the intact pixels are judged when the engine has found the
damage: a brown stain, a rusty foxing spot or the bare paper of a tear is the
print's damage, not its colour.

The verdict point was chosen on labelled synthetic prints, never on the
held-out or the real photos (`python -m training.detector.tone_calibration`
prints the table): crops of the training photos made black-and-white or
sepia, left in colour, muted to an early colour print's colour under a cast,
or painted by hand in a few regions, all aged by the real-scan damage recipe
(stains and foxing included) and judged as the learned engine judges them
(its damage left out). The rule: every kind of colour print is called colour
at least 95% of the time (doubtful photos are called colour, so
`colorize=auto` keeps a photo's own colours when in doubt), and among the
percentiles and thresholds that do so, the one that calls the most
black-and-white prints so. At the 75th percentile and 1.25: colour 0.99,
early colour 0.96, hand-coloured 1.00, black-and-white 0.50 (the median at
1.5, before: 0.96 / 0.75 / 0.98 / 0.79).
"""

from __future__ import annotations

import cv2
import numpy as np

from services.common.resize import shrink_to

#: Long side the photo is judged at: enough for regions of colour, cheap at 4096x4096.
SIDE = 512
#: Lightness levels the tint is taken over (YCrCb's Y in 16-level bins).
BINS = 16
#: Percentile of the pixels' residual chroma that judges the photo.
RESIDUAL_PERCENTILE = 75
#: Residual chroma (Cr/Cb levels) below which a photo is called black-and-white.
TINT_RESIDUAL_GREY = 1.25
#: Residual span over which the score goes from 1 (surely grey) to 0 (surely colour).
SCORE_SPAN = 1.0
#: Pixels (at SIDE) the damage is grown by before it is left out: the blur and JPEG spread its colour.
DAMAGE_MARGIN = 2
#: Least share of the photo judged: past this much damage its colour is judged on all of it.
MIN_INTACT = 0.2


def residual_chroma(rgb: np.ndarray, damage: np.ndarray | None = None) -> np.ndarray:
    """Per judged pixel, the chroma left once the lightness-dependent tint is removed (Cr/Cb levels), over the
    pixels outside `damage` (H x W, nonzero where the photo is damaged) when it is given."""
    small = cv2.GaussianBlur(shrink_to(rgb, SIDE), (0, 0), 1.5)
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32).reshape(-1, 3)
    if damage is not None:
        shrunk = cv2.resize((damage > 0).astype(np.uint8), (small.shape[1], small.shape[0]),
                            interpolation=cv2.INTER_AREA) > 0
        side = 2 * DAMAGE_MARGIN + 1
        intact = ~cv2.dilate(shrunk.astype(np.uint8), np.ones((side, side), np.uint8)).astype(bool).reshape(-1)
        if intact.mean() >= MIN_INTACT:
            ycc = ycc[intact]
    bins = np.clip((ycc[:, 0] * (BINS / 256)).astype(int), 0, BINS - 1)
    counts = np.maximum(np.bincount(bins, minlength=BINS), 1)
    left = [channel - (np.bincount(bins, channel, BINS) / counts)[bins] for channel in (ycc[:, 1], ycc[:, 2])]
    return np.hypot(*left)


def tint_residual(rgb: np.ndarray, damage: np.ndarray | None = None) -> float:
    """The RESIDUAL_PERCENTILE-th percentile of `residual_chroma`: how much chroma the photo has that no tint
    explains."""
    return float(np.percentile(residual_chroma(rgb, damage), RESIDUAL_PERCENTILE))


def grayscale_score(rgb: np.ndarray, damage: np.ndarray | None = None) -> float:
    """1 for a surely black-and-white (or toned) photo, 0 for a surely colour one; >= 0.5 is the verdict.
    `damage` (H x W, nonzero where damaged) is left out of the judgement."""
    residual = tint_residual(rgb, damage)
    return float(np.clip(0.5 - (residual - TINT_RESIDUAL_GREY) / SCORE_SPAN, 0.0, 1.0))
