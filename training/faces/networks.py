"""face-api's four networks rebuilt in PyTorch, layer for layer, from TFJS weights.

Each network follows the forward pass in face-api's TypeScript source
(src/tinyYolov2, src/faceFeatureExtractor, src/xception, src/faceRecognitionNet)
so that the exported ONNX reproduces the reference, including TensorFlow's
asymmetric 'same' padding, which PyTorch's padding argument cannot express.

Every network takes NHWC float32 RGB in 0..255 (batch dimension free, spatial
size fixed) and does its own mean subtraction, so callers only resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.common.tfjs_weights import Weight

#: Mean RGB that face-api subtracts before dividing by 255.
DETECTOR_MEAN = (117.001, 114.697, 97.404)
FACE_MEAN = (122.782, 117.001, 104.298)

# TFJS layouts -> PyTorch layouts.
HWIO_TO_OIHW = (3, 2, 0, 1)
DEPTHWISE_TO_TORCH = (2, 3, 0, 1)  # [kh, kw, C, 1] -> [C, 1, kh, kw]
MATRIX_TO_LINEAR = (1, 0)  # [in, out] -> [out, in]


@dataclass
class WeightSource:
    """Which TFJS weight a PyTorch parameter came from, and how it was permuted."""

    weight: Weight
    permutation: tuple[int, ...] | None
    shape: tuple[int, ...]

    def arrange(self, values: np.ndarray) -> np.ndarray:
        """TFJS-layout values (floats or codes) in the parameter's layout."""
        values = values if self.permutation is None else values.transpose(self.permutation)
        return np.ascontiguousarray(values.reshape(self.shape))


@dataclass
class ParamLoader:
    """Hands out TFJS weights as PyTorch parameters and remembers where each came from.

    The record lets the ONNX writer store a parameter as its original uint8
    codes instead of float32 (four times smaller, and bit-for-bit the source).
    """

    weights: dict[str, Weight]
    sources: dict[int, WeightSource] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def take(self, name: str, permutation: tuple[int, ...] | None = None,
             shape: tuple[int, ...] | None = None) -> nn.Parameter:
        """The TFJS weight `name`, permuted and then reshaped (reshaping here keeps it out of the graph)."""
        weight = self.weights[name]
        permuted = weight.value if permutation is None else weight.value.transpose(permutation)
        source = WeightSource(weight, permutation, permuted.reshape(shape or permuted.shape).shape)
        param = nn.Parameter(torch.from_numpy(source.arrange(weight.value)), requires_grad=False)
        self.sources[id(param)] = source
        self.used.add(name)
        return param

    def check_all_used(self) -> None:
        unused = sorted(set(self.weights) - self.used)
        if unused:
            raise ValueError(f"weights not used by the network: {unused}")

    def named_sources(self, model: nn.Module) -> dict[str, WeightSource]:
        """The record keyed by the model's parameter names (what the ONNX exporter uses)."""
        return {name: self.sources[id(p)] for name, p in model.named_parameters() if id(p) in self.sources}


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad NCHW `x` the way TensorFlow's 'same' does: any odd pixel goes after, not before."""
    pads: list[int] = []
    for size in (x.shape[3], x.shape[2]):  # F.pad wants the last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


def max_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """tf.maxPool(..., 'same'): padded cells never win, hence -inf."""
    return F.max_pool2d(tf_same_pad(x, kernel, stride, -math.inf), kernel, stride)


class Conv(nn.Module):
    """tf.conv2d + bias with 'same' (TF-style) or 'valid' padding."""

    def __init__(self, loader: ParamLoader, prefix: str, stride: int = 1, padding: str = "same") -> None:
        super().__init__()
        self.weight = loader.take(f"{prefix}/filters", HWIO_TO_OIHW)
        self.bias = loader.take(f"{prefix}/bias")
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = tf_same_pad(x, self.weight.shape[-1], self.stride)
        return F.conv2d(x, self.weight, self.bias, self.stride)


class SeparableConv(nn.Module):
    """tf.separableConv2d (depthwise, then pointwise) + bias; 'same' padding."""

    def __init__(self, loader: ParamLoader, prefix: str, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = loader.take(f"{prefix}/depthwise_filter", DEPTHWISE_TO_TORCH)
        self.pointwise = loader.take(f"{prefix}/pointwise_filter", HWIO_TO_OIHW)
        self.bias = loader.take(f"{prefix}/bias")
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = tf_same_pad(x, self.depthwise.shape[-1], self.stride)
        x = F.conv2d(x, self.depthwise, None, self.stride, groups=self.depthwise.shape[0])
        return F.conv2d(x, self.pointwise, self.bias)


class Normalize(nn.Module):
    """NHWC 0..255 -> NCHW, mean-subtracted and divided by 255, as face-api's `normalize`."""

    def __init__(self, mean: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.permute(0, 3, 1, 2) - self.mean) / 255.0


class TinyFaceDetector(nn.Module):
    """TinyYolov2 with separable convs (face-api's TinyFaceDetector config).

    Output: raw YOLO cells, NHWC [N, S/32, S/32, anchors * 5] (x, y, w, h, score logits).
    """

    def __init__(self, loader: ParamLoader) -> None:
        super().__init__()
        self.normalize = Normalize(DETECTOR_MEAN)
        self.conv0 = Conv(loader, "conv0", padding="valid")
        self.blocks = nn.ModuleList(SeparableConv(loader, f"conv{i}") for i in range(1, 6))
        self.head = Conv(loader, "conv8", padding="valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv0(self.normalize(x)), 0.1)
        out = max_pool_same(out, 2, 2)
        for index, block in enumerate(self.blocks):
            # face-api pads this conv by 1 on every side explicitly, then runs it 'valid' (== TF 'same' here).
            out = F.leaky_relu(block(out), 0.1)
            out = max_pool_same(out, 2, 2 if index < 4 else 1)
        return self.head(out).permute(0, 2, 3, 1)


class DenseBlock4(nn.Module):
    """face-api's denseBlock4: a strided conv, then three separable convs densely summed."""

    def __init__(self, loader: ParamLoader, prefix: str, first: bool) -> None:
        super().__init__()
        self.conv0 = Conv(loader, f"{prefix}/conv0", stride=2) if first else SeparableConv(loader, f"{prefix}/conv0", 2)
        self.convs = nn.ModuleList(SeparableConv(loader, f"{prefix}/conv{i}") for i in range(1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.relu(self.conv0(x))
        for conv in self.convs:
            total = total + conv(F.relu(total))  # relu is a no-op on the first pass
        return F.relu(total)


class FaceLandmark68Net(nn.Module):
    """FaceFeatureExtractor (4 dense blocks) + fc: 136 values, (x, y) pairs relative to the 112 input."""

    def __init__(self, loader: ParamLoader) -> None:
        super().__init__()
        self.normalize = Normalize(FACE_MEAN)
        self.dense = nn.ModuleList(DenseBlock4(loader, f"dense{i}", first=i == 0) for i in range(4))
        self.fc_weight = loader.take("fc/weights", MATRIX_TO_LINEAR)
        self.fc_bias = loader.take("fc/bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.normalize(x)
        for block in self.dense:
            out = block(out)
        out = F.avg_pool2d(out, 7, 2).flatten(1)
        return F.linear(out, self.fc_weight, self.fc_bias)


class ReductionBlock(nn.Module):
    """TinyXception reduction block: two separable convs, max pool, plus a strided 1x1 shortcut."""

    def __init__(self, loader: ParamLoader, prefix: str, activate_input: bool) -> None:
        super().__init__()
        self.sep0 = SeparableConv(loader, f"{prefix}/separable_conv0")
        self.sep1 = SeparableConv(loader, f"{prefix}/separable_conv1")
        self.expansion = Conv(loader, f"{prefix}/expansion_conv", stride=2)
        self.activate_input = activate_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(x) if self.activate_input else x
        out = self.sep1(F.relu(self.sep0(out)))
        return max_pool_same(out, 3, 2) + self.expansion(x)


class MainBlock(nn.Module):
    """TinyXception middle-flow block: three relu + separable conv, residual."""

    def __init__(self, loader: ParamLoader, prefix: str) -> None:
        super().__init__()
        self.convs = nn.ModuleList(SeparableConv(loader, f"{prefix}/separable_conv{i}") for i in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for conv in self.convs:
            out = conv(F.relu(out))
        return out + x


class AgeGenderNet(nn.Module):
    """TinyXception(2) + two fc heads: (age in years [N], gender probabilities [N, 2] = (male, female))."""

    def __init__(self, loader: ParamLoader) -> None:
        super().__init__()
        self.normalize = Normalize(FACE_MEAN)
        self.conv_in = Conv(loader, "entry_flow/conv_in", stride=2)
        self.entry = nn.ModuleList([
            ReductionBlock(loader, "entry_flow/reduction_block_0", activate_input=False),
            ReductionBlock(loader, "entry_flow/reduction_block_1", activate_input=True),
        ])
        self.middle = nn.ModuleList(MainBlock(loader, f"middle_flow/main_block_{i}") for i in range(2))
        self.exit = ReductionBlock(loader, "exit_flow/reduction_block", activate_input=True)
        self.exit_conv = SeparableConv(loader, "exit_flow/separable_conv")
        self.age_weight = loader.take("fc/age/weights", MATRIX_TO_LINEAR)
        self.age_bias = loader.take("fc/age/bias")
        self.gender_weight = loader.take("fc/gender/weights", MATRIX_TO_LINEAR)
        self.gender_bias = loader.take("fc/gender/bias")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = F.relu(self.conv_in(self.normalize(x)))
        for block in [*self.entry, *self.middle, self.exit]:
            out = block(out)
        out = F.relu(self.exit_conv(out))
        pooled = F.avg_pool2d(out, 7, 2).flatten(1)
        age = F.linear(pooled, self.age_weight, self.age_bias)[:, 0]
        gender = torch.softmax(F.linear(pooled, self.gender_weight, self.gender_bias), dim=1)
        return age, gender


class ScaledConv(nn.Module):
    """dlib-style conv: conv + bias, then a per-channel affine 'scale' layer (folded batch norm)."""

    def __init__(self, loader: ParamLoader, prefix: str, down: bool) -> None:
        super().__init__()
        self.conv = Conv(loader, f"{prefix}/conv", stride=2 if down else 1, padding="valid" if down else "same")
        self.scale = loader.take(f"{prefix}/scale/weights", shape=(-1, 1, 1))
        self.shift = loader.take(f"{prefix}/scale/biases", shape=(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale + self.shift


class Residual(nn.Module):
    """ResNet basic block; the 'down' variant strides and pads the shortcut with zero channels."""

    def __init__(self, loader: ParamLoader, prefix: str, down: bool) -> None:
        super().__init__()
        self.conv1 = ScaledConv(loader, f"{prefix}/conv1", down)
        self.conv2 = ScaledConv(loader, f"{prefix}/conv2", down=False)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        shortcut = x
        if self.down:
            shortcut = F.avg_pool2d(x, 2, 2)
            # A 'valid' strided conv can come out one cell short of the pooled shortcut: zero-fill at the end.
            out = F.pad(out, [0, shortcut.shape[3] - out.shape[3], 0, shortcut.shape[2] - out.shape[2]])
            if shortcut.shape[1] != out.shape[1]:
                shortcut = torch.cat([shortcut, torch.zeros_like(shortcut)], dim=1)
        return F.relu(out + shortcut)


#: (name, downsampling) for FaceRecognitionNet's residual stack, in order.
_RESNET_LAYERS = (
    ("conv32_1", False), ("conv32_2", False), ("conv32_3", False),
    ("conv64_down", True), ("conv64_1", False), ("conv64_2", False), ("conv64_3", False),
    ("conv128_down", True), ("conv128_1", False), ("conv128_2", False),
    ("conv256_down", True), ("conv256_1", False), ("conv256_2", False),
    ("conv256_down_out", True),
)


class FaceRecognitionNet(nn.Module):
    """dlib's ResNet-34-like face descriptor: 150x150 in, 128-d embedding out (not normalised)."""

    def __init__(self, loader: ParamLoader) -> None:
        super().__init__()
        self.normalize = Normalize(FACE_MEAN)
        self.stem = ScaledConv(loader, "conv32_down", down=True)
        self.layers = nn.ModuleList(Residual(loader, name, down) for name, down in _RESNET_LAYERS)
        self.fc = loader.take("fc", MATRIX_TO_LINEAR)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.stem(self.normalize(x)))
        out = F.max_pool2d(out, 3, 2)
        for layer in self.layers:
            out = layer(out)
        return F.linear(out.mean(dim=(2, 3)), self.fc)
