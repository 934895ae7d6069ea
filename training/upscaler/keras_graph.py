"""A TFJS layers model (Keras functional graph + float32 shards) rebuilt as a PyTorch module.

The UpscalerJS ESRGAN tiers are two architectures (idealo's RDN for slim and
medium, RRDN for thick) with per-scale variations, all plain Keras graphs of
a handful of layer kinds. Interpreting the graph, rather than hand-writing
each network, rebuilds every tier and scale from its own model.json, so a
wiring mistake cannot hide in one hand-written variant.

Layout is converted once here: the module runs NCHW, with kernels moved from
Keras' HWIO to PyTorch's OIHW and channel axes remapped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.common.tfjs_weights import decode_weights


@dataclass(frozen=True)
class Node:
    """One Keras layer: what it is, what feeds it, and its settings."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    config: dict[str, Any] = field(hash=False)


def read_layers_model(model_json: Path) -> tuple[list[Node], str, dict[str, np.ndarray]]:
    """Graph nodes in file (topological) order, the output layer's name, and float32 weights by name."""
    model_json = Path(model_json)
    spec = json.loads(model_json.read_text())
    graph = spec["modelTopology"]["model_config"]["config"]
    nodes = [
        Node(
            name=layer["config"]["name"],
            kind=layer["class_name"],
            inputs=tuple(inbound[0] for call in layer.get("inbound_nodes", []) for inbound in call),
            config=layer["config"],
        )
        for layer in graph["layers"]
    ]
    (output, _, _), = graph["output_layers"]
    weights = {name: weight.value for name, weight in decode_weights(spec["weightsManifest"], model_json.parent).items()}
    return nodes, output, weights


def _conv(node: Node, weights: dict[str, np.ndarray]) -> nn.Conv2d:
    config = node.config
    if tuple(config["strides"]) != (1, 1) or tuple(config["dilation_rate"]) != (1, 1):
        raise ValueError(f"{node.name}: only stride-1, undilated convolutions are supported")
    kernel = weights.pop(f"{node.name}/kernel")  # H x W x in x out
    size_h, size_w, channels_in, channels_out = kernel.shape
    if config["padding"] == "same" and (size_h % 2 == 0 or size_w % 2 == 0):
        raise ValueError(f"{node.name}: 'same' padding of an even kernel is asymmetric; not supported")
    padding = (size_h // 2, size_w // 2) if config["padding"] == "same" else (0, 0)
    conv = nn.Conv2d(channels_in, channels_out, (size_h, size_w), padding=padding, bias=config["use_bias"])
    conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    if config["use_bias"]:
        conv.bias.data = torch.from_numpy(weights.pop(f"{node.name}/bias"))
    return conv


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TF's NHWC depthToSpace (channel index (i*block + j)*C + c) on an NCHW tensor."""
    batch, channels, height, width = x.shape
    out_channels = channels // (block * block)
    x = x.reshape(batch, block, block, out_channels, height, width)
    return x.permute(0, 3, 4, 1, 5, 2).reshape(batch, out_channels, height * block, width * block)


class KerasGraph(nn.Module):
    """Evaluates the Keras graph node by node on NCHW tensors in the model's own value range."""

    def __init__(self, nodes: list[Node], output: str, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        weights = dict(weights)
        self.nodes = nodes
        self.output = output
        self.convs = nn.ModuleDict({node.name: _conv(node, weights) for node in nodes if node.kind == "Conv2D"})
        if weights:
            raise ValueError(f"weights no layer uses: {sorted(weights)}")
        for node in nodes:
            _check(node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for node in self.nodes:
            args = [values[name] for name in node.inputs] or [x]
            values[node.name] = self._evaluate(node, args)
        return values[self.output]

    def _evaluate(self, node: Node, args: list[torch.Tensor]) -> torch.Tensor:
        config = node.config
        if node.kind == "InputLayer":
            return args[0]
        if node.kind == "Conv2D":
            return _activate(config["activation"], self.convs[node.name](args[0]))
        if node.kind == "Activation":
            return _activate(config["activation"], args[0])
        if node.kind == "Concatenate":
            return torch.cat(args, dim=1)
        if node.kind == "Add":
            total = args[0]
            for term in args[1:]:
                total = total + term
            return total
        if node.kind == "MultiplyBeta":
            return args[0] * float(config["beta"])
        if node.kind == "UpSampling2D":
            return F.interpolate(args[0], scale_factor=tuple(float(s) for s in config["size"]), mode="nearest")
        return depth_to_space(args[0], int(config["scale"]))  # PixelShuffle<N>x, vetted by _check


def _activate(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "linear":
        return x
    if name == "relu":
        return F.relu(x)
    raise ValueError(f"activation {name!r} is not supported")


def _check(node: Node) -> None:
    """Refuse, at build time, any layer or setting the evaluator would get wrong."""
    known = {"InputLayer", "Conv2D", "Activation", "Concatenate", "Add", "MultiplyBeta", "UpSampling2D"}
    if node.kind not in known and not (node.kind.startswith("PixelShuffle") and "scale" in node.config):
        raise ValueError(f"{node.name}: layer kind {node.kind} is not supported")
    if node.kind == "Concatenate" and node.config["axis"] not in (3, -1):
        raise ValueError(f"{node.name}: only channel concatenation is supported")
    if node.kind == "UpSampling2D" and node.config["interpolation"] != "nearest":
        raise ValueError(f"{node.name}: only nearest upsampling is supported")
    if node.kind in ("Conv2D", "Activation"):
        _activate(node.config["activation"], torch.zeros(1))
