"""Build (or reuse) the generator's TensorRT engine: `make engines` in the GPU image.

The engine is built through ONNX Runtime's TensorRT execution provider, so
the service runs exactly what was built (same EP, same cache): FP16, one
optimisation profile spanning the working resolutions the engine serves
(batch 1, sides 8..WORK_SIDE, multiples of 8, tuned for a 4:3 photo), and
engine and timing caches in a directory keyed by the model's sha256, the GPU
and the TensorRT version, so a new model, card or TensorRT never picks up a
stale engine. `LearnedGenerator` points ONNX Runtime at the same directory
and so prefers the built engine; without it ONNX Runtime falls back to CUDA,
then CPU.

python -m training.tensorrt.build [--models-dir models] [--cache-dir /tmp/revive-trt-cache]

On a machine without CUDA or TensorRT it exits with status 2 and says why.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.common.runtime import OnnxModel, RuntimeOptions
from services.common.tensorrt import NoTensorRT, keyed_cache_dir, profile_shapes
from services.generator.engines.learned import INPUT, MODEL_FILE, TRT_PROFILE
from services.generator.planes import CHANNELS
from training.common.artifacts import REPO

log = logging.getLogger(__name__)

EXIT_NO_GPU = 2
PROFILE_SHAPES = profile_shapes(INPUT, CHANNELS, TRT_PROFILE)


def build(models_dir: Path, cache_root: Path) -> Path:
    """Build the engine (or find it cached) and run it once at each profile shape; returns the directory."""
    model = models_dir / MODEL_FILE
    cache_dir = keyed_cache_dir(model, cache_root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The same runtime and options the service uses, so it finds exactly this engine.
    engine = OnnxModel(model, RuntimeOptions(providers=("tensorrt",), trt_cache_dir=cache_dir, trt_profile=PROFILE_SHAPES))
    if engine.provider != "TensorrtExecutionProvider":
        raise NoTensorRT(f"ONNX Runtime fell back to {engine.provider}")
    for name, (height, width) in TRT_PROFILE.items():
        engine.run({INPUT: np.zeros((1, CHANNELS, height, width), np.float32)})
        log.info("profile shape ran", extra={"profile": name, "height": height, "width": width})
    record = {"model": str(model), "sha256": sha256(model), "profile": TRT_PROFILE, "fp16": True,
              "engines": sorted(p.name for p in cache_dir.iterdir() if p.suffix in (".engine", ".profile", ".timing"))}
    (cache_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return cache_dir


def main(argv: list[str] | None = None) -> int:
    setup_logging("info")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/revive-trt-cache"),
                        help="cache root, the services' --trt-cache-dir")
    args = parser.parse_args(argv)
    try:
        cache_dir = build(args.models_dir, args.cache_dir)
    except NoTensorRT as reason:
        print(f"tensorrt_build: cannot build a TensorRT engine here: {reason}", file=sys.stderr)
        return EXIT_NO_GPU
    print(f"tensorrt_build: engine ready in {cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
