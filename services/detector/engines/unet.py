"""The learned damage detector: DamageUNet on ONNX Runtime, tiled up to 4096x4096.

Masks come from overlapping full-resolution tiles blended with linear
feathers that sum to one, so tile borders leave no seams; the tiles are
processed a row at a time into a strip buffer, so memory stays at one tile
row however tall the photo. The whole-photo scores (fading, black-and-white)
come from one extra pass over the photo downscaled to `SCORE_SIDE`, where
every tile would only see part of the photo.

Tile size, overlap and batch are the service's `--detector-tile`,
`--detector-overlap` and `--detector-batch` (services/detector/settings.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.common import cancellation
from services.common.batching import DynamicBatcher
from services.common.config import ServiceConfig
from services.common.engines import engine_settings, runtime_options
from services.common.inpainting import damage_union
from services.common.resize import shrink_to
from services.common.runtime import OnnxModel, RuntimeOptions
from services.detector.crack_trace import continued
from services.detector.engine import DAMAGE_TYPES, Detection
from services.detector.settings import MULTIPLE, DetectorSettings
from services.detector.tone import grayscale_score

MODEL_FILE = Path("detector") / "damage_unet.onnx"
#: Longer side of the downscaled photo the whole-photo scores are computed on.
SCORE_SIDE = 512

Predict = Callable[[np.ndarray], np.ndarray]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Window:
    """One tile's extent along one axis and its blend weight over that extent."""

    start: int
    stop: int
    weight: np.ndarray


def windows(size: int, tile: int, overlap: int) -> list[Window]:
    """Tiles covering [0, size), sharing at least `overlap` pixels, feathered to sum to 1.

    As few tiles as `tile` allows, each shrunk to the smallest multiple of
    MULTIPLE that still covers the photo and spread evenly, so no tile is
    spent mostly re-computing its neighbour (4096 px: 4 tiles of 1088).
    """
    if size <= tile:
        return [Window(0, size, np.ones(size, np.float32))]
    count = -(-(size - overlap) // (tile - overlap))
    tile = min(tile, round_up(-(-(size + (count - 1) * overlap) // count), MULTIPLE))
    starts = np.round(np.linspace(0, size - tile, count)).astype(int)
    positions = np.arange(tile, dtype=np.float32)
    ramps = []
    for start in starts:
        # Rising over the first `overlap` pixels unless at the photo's edge; falling likewise at the end.
        rise = np.minimum(1.0, (positions + 0.5) / overlap) if start > 0 else np.ones(tile, np.float32)
        fall = np.minimum(1.0, (tile - positions - 0.5) / overlap) if start + tile < size else np.ones(tile, np.float32)
        ramp = np.zeros(size, np.float32)
        ramp[start:start + tile] = np.minimum(rise, fall)
        ramps.append(ramp)
    total = np.sum(ramps, axis=0)
    return [Window(int(start), int(start) + tile, (ramp / total)[start:start + tile])
            for start, ramp in zip(starts, ramps)]


def _padded(pixels: np.ndarray) -> np.ndarray:
    """Reflect-pad HxWx3 so both sides are multiples of MULTIPLE."""
    height, width = pixels.shape[:2]
    bottom, right = round_up(height, MULTIPLE) - height, round_up(width, MULTIPLE) - width
    if bottom or right:
        pixels = cv2.copyMakeBorder(pixels, 0, bottom, 0, right, cv2.BORDER_REFLECT)
    return pixels


def _chunks(items: list[Window], size: int) -> Iterator[list[Window]]:
    for index in range(0, len(items), size):
        yield items[index:index + size]


def tiled_masks(rgb: np.ndarray, predict: Predict, tile: int, overlap: int, batch: int) -> np.ndarray:
    """Per-type probabilities as C x H x W uint8 (0..255), computed tile by tile.

    `predict` maps N x 3 x h x w float32 0..1 to N x C x h x w probabilities.
    Rows of tiles are blended into a strip; rows no later tile touches are
    quantised into the output and only the overlap is carried to the next row.
    """
    height, width = rgb.shape[:2]
    rows, columns = windows(height, tile, overlap), windows(width, tile, overlap)
    out: np.ndarray | None = None
    carry: np.ndarray | None = None
    for index, row in enumerate(rows):
        strip: np.ndarray | None = None
        for group in _chunks(columns, batch):
            cancellation.check()
            tiles = [_padded(rgb[row.start:row.stop, col.start:col.stop]) for col in group]
            inputs = np.stack(tiles).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            probabilities = predict(inputs)
            if strip is None:
                channels = probabilities.shape[1]
                strip = np.zeros((channels, row.stop - row.start, width), np.float32)
                if out is None:
                    out = np.empty((channels, height, width), np.uint8)
                if carry is not None:
                    strip[:, :carry.shape[1]] += carry
            for col, probability in zip(group, probabilities):
                blend = row.weight[:, None] * col.weight[None, :]
                strip[:, :, col.start:col.stop] += probability[:, :row.stop - row.start, :col.stop - col.start] * blend
        done = (rows[index + 1].start if index + 1 < len(rows) else row.stop) - row.start
        out[:, row.start:row.start + done] = np.clip(strip[:, :done] * 255 + 0.5, 0, 255).astype(np.uint8)
        carry = strip[:, done:]
    return out


def grown(mask: np.ndarray, low: int) -> np.ndarray:
    """Hysteresis, as Canny's edges: pixels down to `low` join the damage where they touch a confident pixel.

    The decision level (128) is set high so that clean photos stay clean; a crack's faint stretches then
    fall below it and the repair would leave them. Starting only from confident pixels, growing adds
    nothing on a clean photo and follows a crack as far as the network still sees it. The default level
    is the F1-best threshold on the validation draws, recorded by the export (`scratch_grow_from`).
    """
    if low >= 128:
        return mask
    strong = mask >= 128
    if not strong.any():
        return mask
    count, labels = cv2.connectedComponents((mask >= low).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[strong])] = True
    keep[0] = False
    joined = keep[labels]
    return np.where(joined, np.maximum(mask, 128), np.minimum(mask, 127)).astype(np.uint8)


#: Axes of N x C x H x W tiles mirrored, per --detector-flips.
MIRRORS = {1: ((),), 2: ((), (3,)), 4: ((), (3,), (2,), (2, 3))}


class UNetDetector:
    """DetectorEngine "unet": learned per-type damage masks and whole-photo scores."""

    name = "unet"

    def __init__(self, config: ServiceConfig | None = None, **overrides: object) -> None:
        """Loads models_dir/detector/damage_unet.onnx; `overrides` replace DetectorSettings fields (tests, bench)."""
        models_dir = config.models_dir if config else Path(__file__).resolve().parents[3] / "models"
        options = runtime_options(config) if config else RuntimeOptions()
        self.model = OnnxModel(models_dir / MODEL_FILE, options, name="damage_unet")
        self.provider = self.model.provider
        self.settings = engine_settings(config, DetectorSettings, **overrides)
        preferred, delay = (config.dynamic_batch, config.batch_delay_ms / 1000) if config else (1, 0.0)
        self._batched = DynamicBatcher(lambda tiles: self.model.run({"rgb": tiles})[0], self.model.name, preferred,
                                       delay)

    def warm_up(self) -> None:
        self.detect(np.full((64, 64, 3), 128, np.uint8))

    def _probabilities(self, inputs: np.ndarray, flips: int) -> np.ndarray:
        """The tiles' probabilities averaged over their mirror images (--detector-flips): a crack the network
        half sees one way round it often sees the other, and a texture it mistakes for one rarely fools it
        every way (bench/detector_bench.py has the figures)."""
        views = MIRRORS[flips]
        total: np.ndarray | None = None
        for axes in views:
            probabilities = self._batched(np.ascontiguousarray(np.flip(inputs, axes)) if axes else inputs)
            unflipped = np.flip(probabilities, axes) if axes else probabilities
            total = unflipped.astype(np.float32) if total is None else total + unflipped
        assert total is not None  # every MIRRORS entry has a view
        return total / len(views)

    def scores(self, rgb: np.ndarray) -> tuple[float, float]:
        """(fading, grayscale) probabilities of the whole photo."""
        small = shrink_to(rgb, SCORE_SIDE)
        inputs = _padded(small)[None].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        fading, grayscale = self.model.run({"rgb": inputs})[1][0]
        return float(fading), float(grayscale)

    def detect(self, rgb: np.ndarray, analyze_faces: bool = False) -> Detection:
        """Faces are not analysed by this engine; `analyze_faces` is ignored."""
        tiling = self.settings
        megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
        flips = max((n for n in MIRRORS if n <= tiling.flips and n * megapixels <= tiling.flip_budget_mp), default=1)
        predict = functools.partial(self._probabilities, flips=flips)
        with self._batched.serving():
            masks = tiled_masks(rgb, predict, tiling.tile, tiling.overlap, tiling.batch)
        masks[0] = grown(masks[0], tiling.grow_from)
        if tiling.trace_cracks:
            masks[0] = continued(masks[0], rgb)
        fading, _ = self.scores(rgb)
        found = {kind: masks[index] for index, kind in enumerate(DAMAGE_TYPES)}
        return Detection(
            masks=found,
            fading_score=fading,
            # The tint test, not the network's score head: that head calls muted colour photos (autochromes,
            # hand-coloured prints) black-and-white, and colourizing then paints over their own colours.
            # Scratches, tears and stains are left out of it: fading is the print's tone, judged with it.
            grayscale_score=grayscale_score(rgb, damage_union(found, rgb.shape[:2])),
        )
