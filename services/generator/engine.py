"""What a generator engine computes, independent of gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Protocol

import numpy as np
from revive.v1 import common_pb2

from services.common.engines import Engine
from services.common.inpainting import damage_union, fill_damage


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

    def damage_mask(self) -> np.ndarray:
        """The union (max) of the scratch, tear and stain masks, HxW uint8; zeros when none was sent."""
        return damage_union(self.masks, self.rgb.shape[:2])

    @cached_property
    def filled(self) -> np.ndarray:
        """The photo with its damage filled at full resolution, made once however many candidates use it."""
        return fill_damage(self.rgb, self.damage_mask())


#: A step the service applies to every restored candidate (the faces keeping their own texture).
CandidateStep = Callable[[np.ndarray], np.ndarray]


class GeneratorEngine(Engine, Protocol):
    def generate(self, request: RestorationInput, seed: int, keep_faces: CandidateStep | None = None) -> np.ndarray:
        """One restored HxWx3 uint8 RGB candidate; the same seed gives the same image.

        `keep_faces` is applied to the restored photo before the requested hair colour, which comes last so
        that it changes the hair and nothing else.
        """
