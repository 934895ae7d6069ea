"""The "esrgan" engine: UpscalerJS's ESRGAN (RDN) weights, converted by services/upscaler/convert.

GAN-trained, so it draws crisp texture rather than the most likely pixels;
"fidelity" is the faithful choice. The tier comes from REVIVE_UPSCALER_TIER.
"""

from __future__ import annotations

from services.common.config import ServiceConfig, env_default
from services.upscaler.engines.tiled_onnx import TiledOnnxUpscaler


def stem(tier: str) -> str:
    return f"esrgan_{tier}"


class EsrganUpscaler(TiledOnnxUpscaler):
    def __init__(self, config: ServiceConfig | None = None, *, tier: str | None = None, **tiling: int) -> None:
        self.tier = tier or env_default("upscaler-tier", "medium")
        super().__init__("esrgan", stem(self.tier), config, **tiling)
