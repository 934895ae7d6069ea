"""What a generator engine computes, independent of gRPC."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
from revive.v1 import common_pb2

from services.common.engines import Engine
from services.common.inpainting import FillRegion, damage_union, fill_damage, fill_region
from services.generator import compose

if TYPE_CHECKING:
    from services.vision.faces.analyzer import FaceAnalyzer

T = TypeVar("T")

#: Tone restoration when `options.strength` is absent, the same for every engine so that it means the same
#: whichever runs.
DEFAULT_STRENGTH = 0.8


@dataclass
class RestorationInput:
    #: HxWx3 uint8 RGB photo as uploaded (decoded once at the gateway).
    rgb: np.ndarray
    #: DamageType -> HxW uint8 mask from the detector.
    masks: dict[int, np.ndarray]
    report: common_pb2.DamageReport
    options: common_pb2.RestoreOptions
    #: What was worked out once for this photo, by name (see `once`); the lock makes concurrent
    #: candidates of one photo wait for a single computation instead of repeating it.
    _derived: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

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

    def once(self, name: str, compute: Callable[[], T]) -> T:
        """`compute()`, run the first time `name` is asked for this photo and kept for every later candidate.

        Why: every candidate of a photo needs the same analyses (its faces, their
        regions, the person mask, the filled photo), and they cost more than the
        candidate itself; the service keeps a photo's input between calls
        (`photo_cache`), so they are computed once per photo, not once per seed.
        """
        with self._lock:
            if name not in self._derived:
                self._derived[name] = compute()
            return self._derived[name]  # type: ignore[return-value]

    @property
    def fill_region(self) -> FillRegion | None:
        """What the full-resolution fill replaces (the damage grown, the cracks' rims); None without damage."""
        return self.once("fill_region", lambda: fill_region(self.rgb, self.damage_mask()))

    @property
    def filled(self) -> np.ndarray:
        """The photo with its damage filled at full resolution; a torn face from its other side, for the faces the
        detector reported."""
        return self.once("filled", lambda: fill_damage(self.rgb, self.damage_mask(), self.fill_region,
                                                       self.report.faces))

    @property
    def strength(self) -> float:
        """How much of the restoration to apply, 0..1: the request's, or DEFAULT_STRENGTH."""
        return self.options.strength if self.options.HasField("strength") else DEFAULT_STRENGTH

    @property
    def levelled(self) -> np.ndarray:
        """The filled photo, with its lightness range restored when the detector calls it a faded print
        (compose.restored_levels, by `strength`): what the learned engine restores and its candidates' faces
        keep their texture from."""
        if self.report.fading_score < compose.FADED_PRINT:
            return self.filled
        return self.once("levelled", lambda: compose.restored_levels(self.filled, self.strength))

    def faces(self, analyzer: FaceAnalyzer) -> list[common_pb2.Face]:
        """The photo's faces: the detector's when it sent them, else found here."""
        return self.once("faces", lambda: list(self.report.faces) or analyzer.analyze(self.rgb))

    def nbytes(self) -> int:
        """Memory the photo holds, its derivatives included (what a cache budgets): their arrays, those of a
        fill region and those in lists (the faces' label maps), each array once (an intact photo's "filled"
        is the photo itself)."""
        # A copy, taken whole under the GIL: another candidate of the photo may be adding to it meanwhile, and
        # the cache reads this without the photo's lock (held through long fills).
        derived = self._derived.copy()
        arrays = {id(array): array for value in (self.rgb, *self.masks.values(), *derived.values())
                  for array in arrays_in(value)}
        return sum(array.nbytes for array in arrays.values())


def arrays_in(value: object) -> list[np.ndarray]:
    """The arrays `value` is, or holds as a fill region or a list."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, FillRegion):
        return [value.mask, value.diffused]
    if isinstance(value, list):
        return [array for item in value for array in arrays_in(item)]
    return []


#: A step the service applies to every restored candidate (the faces keeping their own texture).
CandidateStep = Callable[[np.ndarray], np.ndarray]


class GeneratorEngine(Engine, Protocol):
    def generate(self, request: RestorationInput, seed: int, keep_faces: CandidateStep | None = None) -> np.ndarray:
        """One restored HxWx3 uint8 RGB candidate; the same seed gives the same image.

        `keep_faces` is applied to the restored photo before the requested hair colour, which comes last so
        that it changes the hair and nothing else.
        """

    def repaired(self, request: RestorationInput, seed: int) -> np.ndarray:
        """HxW uint8, 255 where the candidate of `seed` had its damage filled (what the user is shown as
        repaired), 0 elsewhere."""
