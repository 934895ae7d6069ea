"""Quantize the fidelity models to int8 for CPUs: about three times as fast, indistinguishable in the figures.

On a CPU the upscale is most of a restoration request, and FidelitySR's
convolutions run about 3x faster in int8 (VNNI) than in float32. Only the
network's correction is quantized: the bicubic skip that carries the whole
image, the sum and the clamp stay float, so the rounding touches the small
correction and never the photo itself. Weights are int8 per output channel;
activations uint8 with ranges calibrated on crops of the model's own
training photos (never the held-out ones the figures come from).

The entry written to models/upscaler/manifest.json records the float model it
came from, the calibration data and command, and Y-PSNR on the held-out
photos for bicubic, float32 and int8, with the agreement between the two.

python -m training.upscaler.quantize --factor 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from bench.upscaler_bench import classical, onnx_upscaler, psnr_ssim
from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.upscaler.engines.fidelity import STEM
from services.upscaler.engines.tiled_onnx import DEFAULT_MODELS_DIR, INT8_SUFFIX, model_path
from training.common import sources
from training.upscaler import dataset, heldout

log = logging.getLogger(__name__)

CALIBRATION_CROPS = 32
CALIBRATION_CROP = 256
SEED = 2027


class TrainingCrops(CalibrationDataReader):
    """Low-resolution crops of the training photos, one per calibration call."""

    def __init__(self, photos: list[np.ndarray], factor: int) -> None:
        low, _ = dataset.batch(photos, factor, CALIBRATION_CROP, CALIBRATION_CROPS, SEED, step=0)
        self.crops = iter(low[i:i + 1] for i in range(len(low)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        crop = next(self.crops, None)
        return None if crop is None else {"rgb": crop}


def float_nodes(graph: onnx.GraphProto) -> list[str]:
    """The nodes that stay float: the clamp producing the output, the sum before it, and the sum's input
    branch that has no ReLU among its ancestors (the bicubic skip). Found by structure, not by name:
    the x2 and x4 files come from different exporters and name their nodes differently."""
    producer = {output: node for node in graph.node for output in node.output}

    def ancestors(tensor: str) -> list[onnx.NodeProto]:
        found, stack, seen = [], [tensor], set()
        while stack:
            node = producer.get(stack.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                found.append(node)
                stack.extend(node.input)
        return found

    clamp = producer[graph.output[0].name]
    total = producer[clamp.input[0]]
    if clamp.op_type != "Clip" or total.op_type != "Add":
        raise ValueError(f"expected ...Add -> Clip at the output, found {total.op_type} -> {clamp.op_type}")
    skips = [branch for branch in map(ancestors, total.input) if not any(n.op_type == "Relu" for n in branch)]
    if len(skips) != 1:
        raise ValueError("expected exactly one input of the final sum without a ReLU (the bicubic skip)")
    return [clamp.name, total.name, *(node.name for node in skips[0])]


def quantize(source: Path, target: Path, photos: list[np.ndarray], factor: int) -> None:
    source, target = source.resolve(), target.resolve()
    # ONNX Runtime's quantizer drops scratch files (shape inference, external data) into the working
    # directory: run it inside a temporary one so nothing lands in the checkout.
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        prepared = Path(scratch) / "prepared.onnx"
        # The model's shapes are symbolic (any batch and size): only ONNX's own shape inference applies.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(target), TrainingCrops(photos, factor), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(onnx.load(str(prepared)).graph),
        )


def held_out_figures(float_path: Path, int8_path: Path, factor: int) -> dict:
    """Y-PSNR on the held-out photos (Pillow-bicubic downscaled), each model on the whole photo, one thread."""
    engines = {"opencv_bicubic": classical(cv2.INTER_CUBIC), "float32": onnx_upscaler(float_path, 1),
               "int8": onnx_upscaler(int8_path, 1)}
    scores: dict[str, list[float]] = {name: [] for name in engines}
    seconds = {name: 0.0 for name in engines}
    agreement = []
    for photo in heldout.photos().values():
        height, width = (side - side % factor for side in photo.shape[:2])
        truth = photo[:height, :width]
        low = dataset.downscale(truth, factor)
        outputs = {}
        for engine, upscale in engines.items():
            start = time.perf_counter()
            outputs[engine] = upscale(low, factor)
            seconds[engine] += time.perf_counter() - start
            scores[engine].append(psnr_ssim(truth, outputs[engine], factor)[0])
        difference = np.mean((outputs["float32"].astype(np.float64) - outputs["int8"]) ** 2)
        agreement.append(10 * np.log10(255 ** 2 / max(difference, 1e-12)))
    return {
        "photos": sorted(heldout.PHOTOS),
        "y_psnr_db": {engine: round(float(np.mean(values)), 3) for engine, values in scores.items()},
        "int8_vs_float32_rgb_psnr_db_min": round(float(min(agreement)), 2),
        "seconds_one_thread": {engine: round(value, 2) for engine, value in seconds.items()},
        "machine": f"{ort.get_device()} onnxruntime {ort.__version__}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, choices=(2, 4), required=True)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    args = parser.parse_args(argv)
    setup_logging("info")
    source = model_path(args.models_dir, STEM, args.factor)
    target = source.with_suffix(INT8_SUFFIX)
    manifest_path = source.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    photo_set = manifest["models"][source.stem]["source"]["data"]["set"]
    training_photos = dataset.PHOTO_SETS[photo_set]
    quantize(source, target, dataset.load(training_photos, args.data_dir), args.factor)
    entry = manifest["models"][target.name.removesuffix(".onnx")] = {
        "file": target.name,
        "sha256": sha256(target),
        "bytes": target.stat().st_size,
        "scale": args.factor,
        "quantized_from": {"file": source.name, "sha256": sha256(source)},
        "how": "onnxruntime static quantization, QDQ: weights int8 per output channel, activations uint8 "
               "(min-max calibration); the bicubic skip, its sum and the clamp stay float32",
        "calibration": {"photos": [photo.path for photo in training_photos], "set": photo_set,
                        "crops": CALIBRATION_CROPS, "crop": CALIBRATION_CROP, "seed": SEED},
        "license": manifest["models"][source.stem]["source"]["license"],
        "command": f"python -m training.upscaler.quantize --factor {args.factor}",
        "eval": held_out_figures(source, target, args.factor),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("quantized", extra={"model": str(target), "eval": entry["eval"]})


if __name__ == "__main__":
    main()
