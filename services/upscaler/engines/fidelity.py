"""The "fidelity" engine: FidelitySR, trained by Revive for PSNR (training/upscaler).

It predicts the correction to bicubic interpolation, so where it is unsure it
answers like bicubic instead of inventing texture: the right default for
restoring someone's photo. Figures: models/upscaler/manifest.json.
"""

from __future__ import annotations

from services.common.config import ServiceConfig
from services.upscaler.engines.tiled_onnx import TiledOnnxUpscaler

STEM = "fidelity"


class FidelityUpscaler(TiledOnnxUpscaler):
    def __init__(self, config: ServiceConfig | None = None, **overrides: object) -> None:
        super().__init__("fidelity", STEM, config, **overrides)
