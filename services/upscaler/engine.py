"""What an upscaler engine computes, independent of gRPC."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from services.common.engines import Engine


class UpscalerEngine(Engine, Protocol):
    #: Factors the engine supports natively (1 is always handled by the servicer).
    factors: tuple[int, ...]

    def upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray:
        """HxWx3 uint8 RGB in, (factor*H)x(factor*W)x3 uint8 RGB out."""
