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

python -m services.generator.tensorrt_build [--models-dir models] [--cache-dir /tmp/revive-trt-cache]

On a machine without CUDA or TensorRT it exits with status 2 and says why.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.common.runtime import OnnxModel, RuntimeOptions
from services.generator.compose import WORK_SIDE
from services.generator.planes import CHANNELS

log = logging.getLogger(__name__)

MODEL_FILE = Path("generator") / "restoration.onnx"
INPUT = "planes"
#: The optimisation profile: (height, width) at min, opt and max; batch 1.
PROFILE = {"min": (8, 8), "opt": (288, WORK_SIDE), "max": (WORK_SIDE, WORK_SIDE)}
EXIT_NO_GPU = 2


class NoTensorRT(RuntimeError):
    """This machine cannot build a TensorRT engine."""


def gpu_name() -> str:
    """The first GPU's name from nvidia-smi; NoTensorRT when there is none."""
    if shutil.which("nvidia-smi") is None:
        raise NoTensorRT("no NVIDIA driver (nvidia-smi not found)")
    result = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                            capture_output=True, text=True, check=False)
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not names:
        raise NoTensorRT(f"nvidia-smi lists no GPU ({result.stderr.strip() or 'no output'})")
    return names[0]


def tensorrt_version() -> str:
    """The TensorRT runtime's version; NoTensorRT when ONNX Runtime cannot use TensorRT."""
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        raise NoTensorRT(f"this onnxruntime build ({ort.__version__}) has no TensorRT execution provider "
                         "(install onnxruntime-gpu with TensorRT, as the GPU image does)")
    try:
        import tensorrt
    except ImportError as error:
        raise NoTensorRT("the tensorrt Python package is not installed") from error
    return tensorrt.__version__


def cache_key(model_sha256: str, gpu: str, trt_version: str) -> str:
    """A directory name: model hash prefix, GPU slug and TensorRT version."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    return f"{model_sha256[:16]}-{slug}-trt{trt_version}"


def shape(side: tuple[int, int]) -> str:
    return f"{INPUT}:1x{CHANNELS}x{side[0]}x{side[1]}"


#: The profile as the runtime passes it to ONNX Runtime's TensorRT provider.
PROFILE_SHAPES = (shape(PROFILE["min"]), shape(PROFILE["opt"]), shape(PROFILE["max"]))


def keyed_cache_dir(models_dir: Path, cache_root: Path) -> Path:
    """Where this model's engine lives on this GPU with this TensorRT (NoTensorRT without them)."""
    gpu, version = gpu_name(), tensorrt_version()
    return cache_root / cache_key(sha256(models_dir / MODEL_FILE), gpu, version)


def serving_cache_dir(models_dir: Path, cache_root: Path) -> Path:
    """The keyed directory where TensorRT can run, else `cache_root` (ONNX Runtime skips TensorRT anyway)."""
    try:
        return keyed_cache_dir(models_dir, cache_root)
    except NoTensorRT:
        return cache_root


def build(models_dir: Path, cache_root: Path) -> Path:
    """Build the engine (or find it cached) and run it once at each profile shape; returns the directory."""
    model = models_dir / MODEL_FILE
    cache_dir = keyed_cache_dir(models_dir, cache_root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The same runtime and options the service uses, so it finds exactly this engine.
    engine = OnnxModel(model, RuntimeOptions(providers=("tensorrt",), trt_cache_dir=cache_dir, trt_profile=PROFILE_SHAPES))
    if engine.provider != "TensorrtExecutionProvider":
        raise NoTensorRT(f"ONNX Runtime fell back to {engine.provider}")
    for name, (height, width) in PROFILE.items():
        engine.run({INPUT: np.zeros((1, CHANNELS, height, width), np.float32)})
        log.info("profile shape ran", extra={"profile": name, "height": height, "width": width})
    record = {"model": str(model), "sha256": sha256(model), "profile": PROFILE, "fp16": True,
              "engines": sorted(p.name for p in cache_dir.iterdir() if p.suffix in (".engine", ".profile", ".timing"))}
    (cache_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return cache_dir


def main(argv: list[str] | None = None) -> int:
    setup_logging("info")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parents[2] / "models")
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
