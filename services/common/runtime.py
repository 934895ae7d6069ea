"""The one model runtime: an ONNX Runtime session on the best provider available.

Providers are tried in the configured order (TensorRT with an engine cache and
FP16, then CUDA, then CPU). onnxruntime-gpu on a host without a usable GPU
lists the GPU providers as available and then quietly runs on CPU, so the
provider reported here is read back from the session, never assumed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnxruntime as ort

from services.common.metrics import MODEL_INFO, timed_inference

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


@dataclass(frozen=True)
class RuntimeOptions:
    providers: Sequence[str] = ("tensorrt", "cuda", "cpu")
    threads: int = 0  # 0 = ONNX Runtime's default
    trt_cache_dir: Path = Path("/tmp/revive-trt-cache")
    trt_fp16: bool = True
    #: TensorRT optimisation profile as ONNX Runtime spells it: (min, opt, max) shapes,
    #: e.g. "x:1x3x8x8"; empty = TensorRT's own choice. A cached engine is reused only
    #: for the profile it was built with, so a builder and its server must agree.
    trt_profile: tuple[str, str, str] | tuple[()] = ()


def provider_chain(options: RuntimeOptions) -> list[tuple[str, dict[str, Any]]]:
    """The requested providers that this onnxruntime build has, with their options."""
    available = set(ort.get_available_providers())
    chain: list[tuple[str, dict[str, Any]]] = []
    for short in options.providers:
        name = PROVIDER_NAMES.get(short.lower(), short)
        if name not in available:
            continue
        if name == "TensorrtExecutionProvider":
            cache = str(options.trt_cache_dir)
            Path(cache).mkdir(parents=True, exist_ok=True)
            settings: dict[str, Any] = {
                "trt_fp16_enable": options.trt_fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": cache,
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": cache,
            }
            if options.trt_profile:
                low, opt, high = options.trt_profile
                settings.update(trt_profile_min_shapes=low, trt_profile_opt_shapes=opt, trt_profile_max_shapes=high)
            chain.append((name, settings))
        else:
            chain.append((name, {}))
    if not any(name == "CPUExecutionProvider" for name, _ in chain):
        chain.append(("CPUExecutionProvider", {}))  # the floor every build has
    return chain


class OnnxModel:
    """One ONNX model in a session, timed into revive_model_inference_seconds."""

    def __init__(self, path: Path, options: RuntimeOptions, name: str | None = None) -> None:
        self.name = name or Path(path).stem
        session_options = ort.SessionOptions()
        if options.threads > 0:
            session_options.intra_op_num_threads = options.threads
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        chain = provider_chain(options)
        self.session = ort.InferenceSession(
            str(path),
            sess_options=session_options,
            providers=[name for name, _ in chain],
            provider_options=[opts for _, opts in chain],
        )
        #: What really runs: the session's first provider, not the first requested.
        self.provider = self.session.get_providers()[0]
        wanted = chain[0][0]
        if self.provider != wanted:
            log.warning("provider fell back", extra={"model": self.name, "wanted": wanted, "running": self.provider})
        log.info("model loaded", extra={"model": self.name, "provider": self.provider, "path": str(path)})
        MODEL_INFO.labels(self.name, self.provider).set(1)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with timed_inference(self.name, self.provider):
            return self.session.run(self.output_names, dict(feeds))
