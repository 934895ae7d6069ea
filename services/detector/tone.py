"""Black-and-white or colour: whether the photo's chroma is one tint that follows its lightness.

A black-and-white print is grey, or toned (sepia, selenium, a yellowed
paper): its chroma is a function of its lightness, one hue line from the
shadows to the highlights. A colour photo's chroma changes independently of
lightness, from region to region; so does a hand-coloured photo's, or an
autochrome's, however faded or muted. So the verdict removes, per lightness
level, the photo's mean chroma (its tint), and measures what chroma is left
(the distance in Cr/Cb levels, after a blur that takes out grain and JPEG
colour noise). Two judgements, and the photo is colour if either says so:

- the median over the intact pixels, when the engine has found the damage:
  a brown stain, a rusty foxing spot or the bare paper of a tear is the
  print's damage, not its colour, and the median ignores what the detector
  missed of it;
- the upper quartile over the whole photo: an autochrome's colour can sit in
  a quarter of it (a woman's pale blue dress in a garden whose dark foliage
  is one green tint from shadow to highlight), and with its daisies found as
  specks and left out, the intact median called `old_b` black-and-white and
  `auto` painted its dress pink.

The verdict points were chosen on labelled synthetic prints, never on the
held-out or the real photos (`python -m training.detector.tone_calibration`
prints the table): crops of the training photos made black-and-white or
sepia, left in colour, muted to an early colour print's colour under a cast,
or painted by hand in a few regions, all aged by the real-scan damage recipe
(stains and foxing included) and judged as the learned engine judges them.
The rule: among the verdicts that call every kind of colour print colour at
least 80% of the time (doubtful photos are called colour, so `colorize=auto`
keeps a photo's own colours when in doubt), the one right most often over
the four kinds. Called right: black-and-white 0.73, colour 0.97, early
colour 0.81, hand-coloured 1.00 (the intact median alone: 0.79, 0.96, 0.75,
0.98; the 75th percentile of the intact pixels at 1.25, which called every
kind of colour print colour 96% of the time, called half the black-and-white
prints colour, and every held-out one).
"""

from __future__ import annotations

import cv2
import numpy as np

from services.common.resize import shrink_to

#: Long side the photo is judged at: enough for regions of colour, cheap at 4096x4096.
SIDE = 512
#: Lightness levels the tint is taken over (YCrCb's Y in 16-level bins).
BINS = 16
#: Median residual chroma (Cr/Cb levels) of the intact pixels below which a photo may be black-and-white.
TINT_RESIDUAL_GREY = 1.5
#: Upper quartile of the whole photo's residual chroma below which it may be black-and-white.
WHOLE_QUARTILE_GREY = 3.0
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
    tint = tint_by_lightness(ycc)
    return np.hypot(*(ycc[:, 1:] - tint[lightness_bin(ycc[:, 0])]).T)


def lightness_bin(luma: np.ndarray) -> np.ndarray:
    """The tint table's row of each YCrCb luma value."""
    return np.clip((np.asarray(luma) * (BINS / 256)).astype(int), 0, BINS - 1)


def tint_by_lightness(ycc: np.ndarray) -> np.ndarray:
    """BINS x 2: the mean (Cr, Cb) of the pixels (N x 3 YCrCb) at each lightness level, the print's tint; a
    level without pixels takes its neighbours' (a pupil darker than anything intact around it is judged against
    the darkest tint there is), and without any pixel the tint is grey."""
    bins = lightness_bin(ycc[:, 0])
    counts = np.bincount(bins, minlength=BINS)
    if not counts.any():
        return np.full((BINS, 2), 128.0)
    levels = np.flatnonzero(counts)
    means = [np.bincount(bins, ycc[:, channel], BINS)[levels] / counts[levels] for channel in (1, 2)]
    return np.stack([np.interp(np.arange(BINS), levels, mean) for mean in means], axis=1)


def tint_residual(rgb: np.ndarray, damage: np.ndarray | None = None) -> float:
    """The median of `residual_chroma`: how much chroma most of the photo has that no tint explains."""
    return float(np.median(residual_chroma(rgb, damage)))


def grayscale_score(rgb: np.ndarray, damage: np.ndarray | None = None) -> float:
    """1 for a surely black-and-white (or toned) photo, 0 for a surely colour one; >= 0.5 is the verdict.
    `damage` (H x W, nonzero where damaged) is left out of the intact judgement."""
    whole = residual_chroma(rgb)
    intact = whole if damage is None else residual_chroma(rgb, damage)
    scores = (0.5 - (float(np.median(intact)) - TINT_RESIDUAL_GREY) / SCORE_SPAN,
              0.5 - (float(np.percentile(whole, 75)) - WHOLE_QUARTILE_GREY) / (2 * SCORE_SPAN))
    return float(np.clip(min(scores), 0.0, 1.0))
