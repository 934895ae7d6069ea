"""Held-out photos for checking and measuring the upscaler: scikit-image's bundled samples.

None of them is in DIV2K, the set the UpscalerJS ESRGAN weights were trained
on, and all ship inside the scikit-image wheel (nothing is downloaded). The
greyscale "camera" stands in for the black-and-white photos Revive restores.
"""

from __future__ import annotations

import numpy as np

#: Sample name -> licence, as scikit-image's data module states it.
PHOTOS = {
    "astronaut": "public domain (NASA)",
    "camera": "CC0 (Lav Varshney)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "rocket": "public domain (SpaceX)",
}


def load(name: str) -> np.ndarray:
    """One sample as HxWx3 uint8 RGB; raises ImportError without scikit-image."""
    from skimage import data  # a bench/converter dependency only, never the service's

    pixels = getattr(data, name)()
    return np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels[:, :, :3]


def photos() -> dict[str, np.ndarray]:
    return {name: load(name) for name in PHOTOS}
