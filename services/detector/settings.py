"""The detector engines' own knobs: flags `--detector-*`, variables REVIVE_DETECTOR_*."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.config import Settings, flag

#: Tile sides must be multiples of this (the learned network's total downsampling).
MULTIPLE = 32


@dataclass(frozen=True)
class DetectorSettings(Settings):
    PREFIX = "detector-"
    TITLE = "detector engines"

    tile: int = flag(1152, f"side of the full-resolution tiles the unet engine sees (a multiple of {MULTIPLE})",
                     minimum=MULTIPLE)
    overlap: int = flag(64, "pixels adjacent tiles share, blended so borders leave no seam", minimum=1)
    batch: int = flag(1, "tiles per inference call", minimum=1)
    flips: int = flag(4, "mirrored copies of every tile the unet averages (test-time augmentation): 1, 2 (and "
                           "left-right) or 4 (and upside down)", choices=(1, 2, 4))
    flip_budget_mp: float = flag(40.0, "megapixels of network passes one photo may take: a larger photo is "
                                       "averaged over fewer mirrored copies (a 4096x4096 scan over 2)", minimum=1)
    grow_from: int = flag(
        23, "mask level (0..255) down to which a crack grows from its confident pixels (hysteresis); 128 = off; "
            "the default is the committed model's calibrated level (models/detector/damage_unet.json)",
        minimum=0)
    trace_cracks: bool = flag(True, "follow every found crack on along its line where the network loses it (a pale "
                                    "dash on a brow, a faint stretch over a forehead): services/detector/crack_trace.py")

    def __post_init__(self) -> None:
        if self.grow_from > 128:
            raise ValueError(f"--detector-grow-from {self.grow_from} must be at most 128 (the decision level)")
        if self.tile % MULTIPLE or not 0 < self.overlap < self.tile:
            raise ValueError(f"--detector-tile {self.tile} must be a multiple of {MULTIPLE} "
                             f"and exceed --detector-overlap {self.overlap}")
