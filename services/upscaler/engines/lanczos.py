"""Lanczos resampling: the classical baseline every learned upscaler must beat."""

from __future__ import annotations

import cv2
import numpy as np

from services.common.config import ServiceConfig
from services.common.metrics import timed_inference


class LanczosUpscaler:
    name = "lanczos"
    provider = "opencv"
    factors = (2, 4)

    def __init__(self, config: ServiceConfig | None = None) -> None:
        """Needs no model; `config` is accepted to match every engine factory."""

    def warm_up(self) -> None:
        self.upscale(np.zeros((8, 8, 3), np.uint8), 2)

    def upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray:
        height, width = rgb.shape[:2]
        with timed_inference(self.name, self.provider):
            return cv2.resize(rgb, (width * factor, height * factor), interpolation=cv2.INTER_LANCZOS4)
