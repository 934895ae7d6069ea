"""Where a prebuilt TensorRT engine lives, so a service finds exactly the one built for it.

Engines are only valid for one model, one GPU and one TensorRT version, so
their cache directory is keyed by all three: a new model, card or TensorRT
never picks up a stale engine. The services look the directory up at start
(`serving_cache_dir`); `training/tensorrt/build.py` builds into it ahead of
time. Both must agree on the key and the optimisation profile, which is why
both live here and in the engine that declares its profile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Mapping

import onnxruntime as ort

from services.common.artifacts import sha256

#: An optimisation profile: (height, width) at "min", "opt" and "max"; batch 1.
Profile = Mapping[str, tuple[int, int]]


class NoTensorRT(RuntimeError):
    """This machine cannot build or run a TensorRT engine."""


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


def profile_shapes(input_name: str, channels: int, profile: Profile) -> tuple[str, str, str]:
    """The profile as ONNX Runtime's TensorRT provider takes it (min, opt, max shape strings)."""
    return tuple(f"{input_name}:1x{channels}x{profile[key][0]}x{profile[key][1]}"  # type: ignore[return-value]
                 for key in ("min", "opt", "max"))


def keyed_cache_dir(model: Path, cache_root: Path) -> Path:
    """Where this model's engine lives on this GPU with this TensorRT (NoTensorRT without them)."""
    gpu, version = gpu_name(), tensorrt_version()
    return cache_root / cache_key(sha256(model), gpu, version)


def serving_cache_dir(model: Path, cache_root: Path) -> Path:
    """The keyed directory where TensorRT can run, else `cache_root` (ONNX Runtime skips TensorRT anyway)."""
    try:
        return keyed_cache_dir(model, cache_root)
    except NoTensorRT:
        return cache_root
