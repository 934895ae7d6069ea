"""SceneColourPrior: the colour a grey scene most plausibly had, and how sure of it the network is.

The network (training/colour_prior; origin, data and figures in
models/colour/manifest.json) classifies every 4x4 block of a grey photo into
CIELAB ab bins and its graph decodes that to the annealed mean and the
distribution's spread. The colourizer weighs the colour by what each spread
earned on validation photos (colourize.SCENE_WEIGHTS) and uses it for scenes;
a portrait's backdrop stays a per-candidate palette.

Candidates differ by a tilt of the distribution (training/colour_prior/model.py:
AnnealedMean) towards a hue of their own, so they part where the network
holds several answers plausible and agree where it is sure.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.common.runtime import OnnxModel, RuntimeOptions

MODEL_FILE = Path("colour") / "scene_colour.onnx"
#: The network's input sides must be multiples of this; its output is a quarter of its input.
MULTIPLE = 8
STRIDE = 4
#: Strength of a candidate's tilt (nats per ab unit). On the validation photos 0.04 moved the network's colour
#: by 8.5 ab between candidates (weighted as served) for 0.5 ab further from the truth; 0.08 and above
#: pulled foliage purple. Since the colourizer averages the network's colour over stretches of alike lightness
#: (colourize.SCENE_PULL), 0.06 parts the tuning scenes' candidates by 9.5 ab instead of 7.4 at the same
#: distance from the truth (bench/colour_bench.py --photos tuning); at 0.08 a storm's sky turned brown.
TILT_STRENGTH = 0.06
#: Successive seeds' hues turn by the golden angle, so any few candidates face well-spread directions.
GOLDEN_ANGLE = np.deg2rad(137.508)


def candidate_tilt(seed: int) -> np.ndarray:
    """The (2,) tilt of candidate `seed`: TILT_STRENGTH towards a hue of its own."""
    angle = GOLDEN_ANGLE * seed
    return np.array([np.cos(angle), np.sin(angle)], np.float32) * TILT_STRENGTH


def network_planes(lightness: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """2 x H x W float32 from lightness (H x W, L 0..100): L / 100 - 0.5, and each row's height in the photo
    (0 top, 1 bottom: skies are up); `rows` gives those heights where the lightness is a crop of a photo."""
    height, width = lightness.shape
    if rows is None:
        rows = np.arange(height, dtype=np.float32) / max(height - 1, 1)
    return np.stack([lightness.astype(np.float32) / 100.0 - 0.5,
                     np.broadcast_to(rows.astype(np.float32)[:, None], (height, width))])


class SceneColourPrior:
    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        self.model = OnnxModel(path, options, "scene_colour")

    def predict(self, lightness: np.ndarray, tilt: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(H x W x 2 CIELAB ab, H x W spread in ab units) for a photo's lightness (H x W, L 0..100), at its size,
        the colour tilted by `tilt` (candidate_tilt; None: the best guess).

        Run at the size given (the colourizer's solve grid); padded by reflection to the network's multiple."""
        height, width = lightness.shape
        padded_height, padded_width = (-(-side // MULTIPLE) * MULTIPLE for side in (height, width))
        rows = np.arange(padded_height, dtype=np.float32) / max(height - 1, 1)
        padded = np.pad(lightness, ((0, padded_height - height), (0, padded_width - width)), mode="reflect")
        tilt = np.zeros(2, np.float32) if tilt is None else tilt.astype(np.float32)
        (colour,) = self.model.run({"planes": network_planes(padded, rows)[None], "tilt": tilt[None]})
        out = colour[0, :, : -(-height // STRIDE), : -(-width // STRIDE)].transpose(1, 2, 0)
        full = cv2.resize(np.ascontiguousarray(out), (width, height), interpolation=cv2.INTER_LINEAR)
        return full[..., :2], full[..., 2]
