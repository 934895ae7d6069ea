"""What a detector engine computes, independent of gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from revive.v1 import common_pb2

from services.common.engines import Engine

#: The damage types every engine reports, in a fixed order.
DAMAGE_TYPES = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN, common_pb2.FADING)


@dataclass
class Detection:
    #: DamageType -> HxW uint8 mask, 0 = intact .. 255 = damaged.
    masks: dict[int, np.ndarray]
    fading_score: float
    grayscale_score: float
    faces: list[common_pb2.Face] = field(default_factory=list)

    @property
    def is_grayscale(self) -> bool:
        return self.grayscale_score >= 0.5


class DetectorEngine(Engine, Protocol):
    def detect(self, rgb: np.ndarray, analyze_faces: bool = False) -> Detection:
        """Analyse an HxWx3 uint8 RGB photo."""
