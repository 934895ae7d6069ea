"""The upscaler engines' own knobs: flags `--upscaler-*`, variables REVIVE_UPSCALER_*."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Settings, flag
from services.upscaler.engines.self_ensemble import SIZES, checked_size


@dataclass(frozen=True)
class UpscalerSettings(Settings):
    PREFIX = "upscaler-"
    TITLE = "upscaler engines"

    tile: int = flag(256, "side of the input tiles the learned engines see", minimum=1)
    overlap: int = flag(32, "input pixels adjacent tiles share (at least the model's receptive field)", minimum=1)
    batch: int = flag(1, "tiles per inference call", minimum=1)
    ensemble: int = flag(1, "geometric self-ensemble copies averaged (costs one model pass each)", choices=SIZES)
    precision: str = flag("auto", "int8 runs a model's quantized sibling where one exists (about 3x faster on "
                          "CPUs); auto does so only on the CPU provider", choices=("auto", "float32", "int8"))
    tier: str = flag("medium", "which converted ESRGAN weights the esrgan engine serves",
                     choices=("slim", "medium", "thick"))

    def __post_init__(self) -> None:
        if not 0 < self.overlap < self.tile:
            raise ValueError(f"need 0 < --upscaler-overlap ({self.overlap}) < --upscaler-tile ({self.tile})")
        checked_size(self.ensemble)
