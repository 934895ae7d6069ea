"""The "esrgan" engine: UpscalerJS's ESRGAN (RDN) weights, converted by training/upscaler.

GAN-trained, so it draws crisp texture rather than the most likely pixels;
"fidelity" is the faithful choice. The tier comes from `--upscaler-tier`.
"""

from __future__ import annotations

from services.common.config import ServiceConfig
from services.common.engines import engine_settings
from services.upscaler.engines.tiled_onnx import TiledOnnxUpscaler
from services.upscaler.settings import UpscalerSettings


def stem(tier: str) -> str:
    return f"esrgan_{tier}"


class EsrganUpscaler(TiledOnnxUpscaler):
    def __init__(self, config: ServiceConfig | None = None, **overrides: object) -> None:
        self.tier = engine_settings(config, UpscalerSettings, **overrides).tier
        super().__init__("esrgan", stem(self.tier), config, **overrides)
