"""The shared ONNX runtime: provider fallback is reported truthfully and timed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from prometheus_client import REGISTRY

from services.common.runtime import OnnxModel, RuntimeOptions, provider_chain


@pytest.fixture(scope="module")
def doubler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = 2x with dynamic batch, height and width: the smallest real model."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "doubler", [x], [y], [two])
    path = tmp_path_factory.mktemp("models") / "doubler.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_gpu_providers_absent_here_fall_back_to_cpu_and_say_so(doubler):
    model = OnnxModel(doubler, RuntimeOptions(providers=("tensorrt", "cuda", "cpu"), threads=1))
    assert model.provider == "CPUExecutionProvider"
    (y,) = model.run({"x": np.ones((1, 3, 5, 7), np.float32)})
    assert y.shape == (1, 3, 5, 7) and np.all(y == 2)


def test_inference_is_timed_by_model_and_provider(doubler):
    model = OnnxModel(doubler, RuntimeOptions(threads=1), name="doubler-timed")
    labels = {"model": "doubler-timed", "provider": "CPUExecutionProvider"}
    before = REGISTRY.get_sample_value("revive_model_inference_seconds_count", labels) or 0
    model.run({"x": np.zeros((2, 3, 4, 4), np.float32)})
    assert REGISTRY.get_sample_value("revive_model_inference_seconds_count", labels) == before + 1
    assert REGISTRY.get_sample_value("revive_model_loaded_info", labels) == 1


def test_provider_chain_keeps_order_and_always_ends_on_cpu():
    chain = [name for name, _ in provider_chain(RuntimeOptions(providers=("cuda",)))]
    assert chain[-1] == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider" not in chain
