"""Convert face-api's TFJS weights to ONNX: manifest -> PyTorch network -> ONNX file.

    python -m training.faces.convert \\
        --npm-dir build/npm/node_modules/@vladmandic/face-api --out models/faces

Weights that TFJS stores as uint8 codes are stored the same way in the ONNX
file (uint8 initializer -> Cast -> Mul scale -> Add min; ONNX Runtime folds
that at load), so the files are as small as the originals and hold exactly
their values. Each export is checked against the PyTorch network it came from;
compare.py then checks the whole pipeline against face-api itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from training.common.onnx_export import quiet_exporter
from training.common.tfjs_weights import load_weights
from training.faces import networks

log = logging.getLogger(__name__)

OPSET = 18


@dataclass(frozen=True)
class Spec:
    """One model to convert: its TFJS manifest, network class, input side, I/O names and origin."""

    manifest: str
    build: Callable[[networks.ParamLoader], nn.Module]
    size: int
    outputs: tuple[str, ...]
    #: Who trained it on what, as the package's TUTORIAL.md states.
    origin: str


#: ONNX file stem -> how to make it. Input is always "image": NHWC float32 RGB 0..255.
SPECS: dict[str, Spec] = {
    "tiny_face_detector": Spec(
        "tiny_face_detector_model-weights_manifest.json", networks.TinyFaceDetector, 416, ("grid",),
        "face-api.js (justadudewhohacks); 'trained on a custom dataset of ~14K images labeled with bounding boxes'"),
    "face_landmark_68": Spec(
        "face_landmark_68_model-weights_manifest.json", networks.FaceLandmark68Net, 112, ("landmarks",),
        "face-api.js (justadudewhohacks); 'trained on a dataset of ~35k face images labeled with 68 face landmark "
        "points'"),
    "age_gender": Spec(
        "age_gender_model-weights_manifest.json", networks.AgeGenderNet, 112, ("age", "gender"),
        "face-api.js (justadudewhohacks); trained on UTK, FGNET, Chalearn, Wiki, IMDB, CACD, MegaAge, MegaAge-Asian "
        "(some of these datasets are licensed for non-commercial research only)"),
    "face_recognition": Spec(
        "face_recognition_model-weights_manifest.json", networks.FaceRecognitionNet, 150, ("embedding",),
        "dlib's face recognition ResNet (weights trained by Davis King, 99.38% on LFW), ported to TFJS by face-api.js"),
}


def store_quantized(model: onnx.ModelProto, sources: dict[str, networks.WeightSource]) -> int:
    """Replace float initializers that came from uint8 TFJS weights by their codes plus a dequantise.

    Returns how many were replaced; raises if a quantised weight was not found
    as an initializer (the exporter folded it into something else).
    """
    graph = model.graph
    by_name = {init.name: init for init in graph.initializer}
    nodes = []
    replaced = 0
    for name, source in sources.items():
        quant = source.weight.quantization
        if quant is None:
            continue
        if name not in by_name:
            raise RuntimeError(f"parameter {name} is not an initializer of the exported graph")
        codes = source.arrange(source.weight.quantized)
        exported = numpy_helper.to_array(by_name[name])
        if exported.shape != codes.shape:
            raise RuntimeError(f"{name}: exported shape {exported.shape} != {codes.shape}")
        graph.initializer.remove(by_name[name])
        graph.initializer.extend([
            numpy_helper.from_array(codes, f"{name}.q"),
            numpy_helper.from_array(np.array(quant.scale, np.float32), f"{name}.scale"),
            numpy_helper.from_array(np.array(quant.min, np.float32), f"{name}.min"),
        ])
        nodes += [
            helper.make_node("Cast", [f"{name}.q"], [f"{name}.f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{name}.f", f"{name}.scale"], [f"{name}.scaled"]),
            helper.make_node("Add", [f"{name}.scaled", f"{name}.min"], [name]),
        ]
        replaced += 1
    for index, node in enumerate(nodes):
        graph.node.insert(index, node)
    return replaced


def export(name: str, spec: Spec, npm_dir: Path, out_dir: Path) -> dict:
    """Build, export and verify one model; returns its manifest entry."""
    manifest = npm_dir / "model" / spec.manifest
    loader = networks.ParamLoader(load_weights(manifest))
    net = spec.build(loader).eval()
    loader.check_all_used()

    path = out_dir / f"{name}.onnx"
    example = torch.rand(2, spec.size, spec.size, 3) * 255
    torch.onnx.export(
        net, (example,), str(path), input_names=["image"], output_names=list(spec.outputs),
        dynamic_shapes=({0: torch.export.Dim("faces")},),
        opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
    )
    model = onnx.load(str(path))
    replaced = store_quantized(model, loader.named_sources(net))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))

    # The file must compute what the PyTorch network computes, on a batch size it was not traced with.
    probe = (np.random.default_rng(0).random((3, spec.size, spec.size, 3)) * 255).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(probe))
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": probe})
    max_diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
    if max_diff > 1e-3:
        raise RuntimeError(f"{name}: ONNX differs from PyTorch by {max_diff}")
    log.info("exported", extra={"model": name, "bytes": path.stat().st_size, "max_diff": max_diff})
    return {
        "file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "input": {"name": "image", "shape": ["faces", spec.size, spec.size, 3], "layout": "NHWC RGB float32 0..255"},
        "outputs": list(spec.outputs),
        "source": {"manifest": spec.manifest, "sha256": sha256(manifest),
                   "shards": {s: sha256(npm_dir / "model" / s)
                              for g in json.loads(manifest.read_text()) for s in g["paths"]}},
        "origin": spec.origin,
        "uint8_weights_kept": replaced,
        "onnx_vs_pytorch_max_abs_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npm-dir", type=Path, required=True, help="the installed @vladmandic/face-api package")
    parser.add_argument("--out", type=Path, default=Path("models/faces"))
    args = parser.parse_args(argv)
    setup_logging("info")
    quiet_exporter()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    package = json.loads((args.npm_dir / "package.json").read_text())
    manifest_path = args.out / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    models = {name: export(name, spec, args.npm_dir, args.out) for name, spec in SPECS.items()}
    # Entries other converters write into this manifest (convert_parsing.py's face_parsing) are kept.
    models.update({name: entry for name, entry in previous.get("models", {}).items() if name not in models})
    shutil.copyfile(args.npm_dir / "LICENSE", args.out / "LICENSE")

    manifest = {
        "source": {
            "package": f"{package['name']}@{package['version']}",
            "license": package["license"],
            "license_file": "LICENSE (copied from the package)",
            "homepage": package.get("homepage"),
            "note": "face-api's TFJS ports of its own and dlib's networks; weights are the package's, unchanged",
        },
        "produced_by": "python -m training.faces.convert --npm-dir "
                       "build/npm/node_modules/@vladmandic/face-api --out models/faces",
        "tools": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                  "opset": OPSET},
        "models": models,
        # Filled by `python -m training.faces.compare --record`; kept across re-conversions.
        "check": previous.get("check"),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote manifest", extra={"path": str(manifest_path)})


if __name__ == "__main__":
    main(sys.argv[1:])
