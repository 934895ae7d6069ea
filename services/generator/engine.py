"""What a generator engine computes, independent of gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
from revive.v1 import common_pb2

from services.common.engines import Engine


@dataclass
class RestorationInput:
    #: HxWx3 uint8 RGB photo as uploaded (decoded once at the gateway).
    rgb: np.ndarray
    #: DamageType -> HxW uint8 mask from the detector.
    masks: dict[int, np.ndarray]
    report: common_pb2.DamageReport
    options: common_pb2.RestoreOptions

    def should_colorize(self) -> bool:
        """Auto colourizes black-and-white photos only; ON/OFF force it."""
        if self.options.colorize == common_pb2.COLORIZE_ON:
            return True
        if self.options.colorize == common_pb2.COLORIZE_OFF:
            return False
        return self.report.is_grayscale

    def damage_mask(self, types: tuple[int, ...] = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN)) -> np.ndarray:
        """The union (max) of the masks of `types`, HxW uint8; zeros when none was sent."""
        union = np.zeros(self.rgb.shape[:2], np.uint8)
        for kind in types:
            if kind in self.masks:
                np.maximum(union, self.masks[kind], out=union)
        return union


#: A step the service applies to every restored candidate (the faces keeping their own texture).
CandidateStep = Callable[[np.ndarray], np.ndarray]


class GeneratorEngine(Engine, Protocol):
    def generate(self, request: RestorationInput, seed: int, keep_faces: CandidateStep | None = None) -> np.ndarray:
        """One restored HxWx3 uint8 RGB candidate; the same seed gives the same image.

        `keep_faces` is applied to the restored photo before the requested hair colour, which comes last so
        that it changes the hair and nothing else.
        """
