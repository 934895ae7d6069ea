"""What every learned upscaler shares: one ONNX file per factor, run in feathered tiles.

Photos are processed in overlapping, feathered tiles (services/common/tiling.py)
so a 1024x1024 -> 4096x4096 request stays within a fixed memory budget;
bench/upscaler_bench.py has the figures behind the defaults. Every model takes
N x 3 x H x W RGB in 0..1 ("rgb") and returns the upscaled batch first.

Tile, overlap, batch and the self-ensemble size (self_ensemble.py) are the
service's UpscalerSettings (`--upscaler-tile` and so on, services/upscaler/settings.py);
keyword arguments override them in tests and benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.common.batching import DynamicBatcher
from services.common.config import ServiceConfig
from services.common.engines import engine_settings, runtime_options
from services.common.runtime import OnnxModel, RuntimeOptions
from services.common.tiling import tiled_apply
from services.upscaler.engines.self_ensemble import self_ensemble
from services.upscaler.settings import UpscalerSettings

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
#: A model's int8 sibling, beside it: fidelity_x2.onnx -> fidelity_x2.int8.onnx (training/upscaler/quantize.py).
INT8_SUFFIX = ".int8.onnx"


class TiledOnnxUpscaler:
    """An UpscalerEngine serving one ONNX file per factor: models_dir/upscaler/<stem>_x<factor>.onnx by default."""

    factors = (2, 4)
    #: Input pixels a tile must share with its neighbour so no output pixel misses context: the model's
    #: receptive field. --upscaler-overlap is raised to it for models that need more.
    min_overlap = 0

    def __init__(self, name: str, stem: str, config: ServiceConfig | None = None, **overrides: object) -> None:
        """`overrides` replace fields of the service's UpscalerSettings (tests and benchmarks)."""
        self.name = name
        models_dir = config.models_dir if config else DEFAULT_MODELS_DIR
        options = runtime_options(config) if config else RuntimeOptions()
        self.settings = engine_settings(config, UpscalerSettings, **overrides)
        self.models = {factor: self.load(path, options)
                       for factor, path in self.model_files(Path(models_dir), stem).items()}
        self.provider = next(iter(self.models.values())).provider
        preferred, delay = (config.dynamic_batch, config.batch_delay_ms / 1000) if config else (1, 0.0)
        self.batchers = {factor: DynamicBatcher(lambda tiles, model=model: model.run({"rgb": tiles})[0], model.name,
                                                preferred, delay)
                         for factor, model in self.models.items()}

    def load(self, path: Path, options: RuntimeOptions) -> OnnxModel:
        """The float model, or its int8 sibling where --upscaler-precision asks for it: on CPUs int8 runs
        the convolutions about three times as fast, within the figures' noise (models/upscaler/manifest.json)."""
        quantized = path.with_suffix(INT8_SUFFIX)
        precision = self.settings.precision
        if precision == "int8" and not quantized.exists():
            raise FileNotFoundError(f"--upscaler-precision int8: no {quantized.name} beside {path.name}")
        model = OnnxModel(path, options, name=path.stem)
        if quantized.exists() and (precision == "int8" or
                                   (precision == "auto" and model.provider == "CPUExecutionProvider")):
            return OnnxModel(quantized, options, name=quantized.name.removesuffix(".onnx"))
        return model

    def model_files(self, models_dir: Path, stem: str) -> dict[int, Path]:
        return {factor: model_path(models_dir, stem, factor) for factor in self.factors}

    def model_factor(self, factor: int) -> int:
        """The factor of the model that serves an upscale by `factor` (an x4 network may serve x2 too)."""
        return factor

    def warm_up(self) -> None:
        for factor in self.factors:
            self.upscale(np.full((16, 16, 3), 128, np.uint8), factor)

    def infer(self, batch: np.ndarray, factor: int) -> np.ndarray:
        """N x 3 x h x w tiles in 0..1 -> N x 3 x (factor*h) x (factor*w) in 0..1."""
        return self_ensemble(self.batchers[factor], batch, self.settings.ensemble)

    def upscale(self, rgb: np.ndarray, factor: int) -> np.ndarray:
        def run(batch: np.ndarray) -> np.ndarray:
            return self.infer(batch * np.float32(1 / 255), factor)

        tiling = self.settings
        overlap = max(tiling.overlap, self.min_overlap)
        with self.batchers[self.model_factor(factor)].serving():
            out = tiled_apply(rgb, run, max(tiling.tile, 2 * overlap), overlap, tiling.batch)
        # In place: at 4096x4096 each float32 temporary would cost another 200 MB.
        out *= 255
        out += 0.5
        return np.clip(out, 0, 255, out=out).astype(np.uint8)


def model_path(models_dir: Path, stem: str, factor: int) -> Path:
    return Path(models_dir) / "upscaler" / f"{stem}_x{factor}.onnx"
