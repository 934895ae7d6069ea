"""Convert UpscalerJS ESRGAN weights (TFJS layers format) to ONNX for the esrgan engine.

Reads `@upscalerjs/esrgan-<tier>/models/x<scale>/model.json` and its shards,
rebuilds the Keras graph in PyTorch (keras_graph.py), wraps it so every file
has the same interface whatever the tier's native value range
(input "rgb": N x 3 x H x W float32 RGB 0..1; output "rgb": N x 3 x sH x sW,
clipped to 0..1), exports ONNX with dynamic batch, height and width, and checks
the file against the PyTorch rebuild before recording it in the manifest.

usage: python -m training.upscaler.convert --tier medium --scales 2 4 --out models/upscaler
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from training.common.artifacts import REPO
from training.common.onnx_export import OPSET, export_checked, quiet_exporter
from training.upscaler.keras_graph import KerasGraph, read_layers_model

log = logging.getLogger(__name__)

NPM_DIR = REPO / "build" / "npm" / "esrgan" / "node_modules"
#: ONNX vs PyTorch, in 0..1 units, on a random probe: float32 reordering only.
EXPORT_TOLERANCE = 1e-4


def package_dir(npm_dir: Path, tier: str) -> Path:
    return Path(npm_dir) / "@upscalerjs" / f"esrgan-{tier}"


def model_file(tier: str, scale: int) -> str:
    """File name of a converted model; the esrgan engine looks models up by it."""
    return f"esrgan_{tier}_x{scale}.onnx"


def value_range(package: Path) -> float:
    """255 for the RDN tiers (trained on 0..255), 1 for RRDN (0..1), read from the package's definition."""
    definition = package / "dist" / "cjs" / "models" / package.name / "src" / "getModelDefinition.js"
    return 1.0 if 'architecture: "rrdn"' in definition.read_text() else 255.0


class UnitRange(nn.Module):
    """The tier's network behind a fixed 0..1 interface, clipped like the reference's output."""

    def __init__(self, network: KerasGraph, span: float) -> None:
        super().__init__()
        self.network = network
        self.span = span

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.network(rgb * self.span) / self.span, 0.0, 1.0)


def export_onnx(model: nn.Module, path: Path) -> float:
    """An upscaler's ONNX file ("rgb" in, "rgb_out" out), checked on an untraced batch and shape.

    The upscaler's trained models (training/upscaler) are written the same way.
    """
    probe = torch.from_numpy(np.random.default_rng(0).random((3, 3, 40, 28), dtype=np.float32))
    return export_checked(model, path, torch.rand(2, 3, 24, 32), probe, "rgb", ("rgb_out",), EXPORT_TOLERANCE)


def build(npm_dir: Path, tier: str, scale: int) -> UnitRange:
    """The PyTorch rebuild of one tier and scale, in eval mode."""
    package = package_dir(npm_dir, tier)
    network = KerasGraph(*read_layers_model(package / "models" / f"x{scale}" / "model.json"))
    return UnitRange(network, value_range(package)).eval()


def export(npm_dir: Path, tier: str, scale: int, out_dir: Path) -> dict:
    """Export one model, verify it against PyTorch, and return its manifest entry."""
    model = build(npm_dir, tier, scale)
    path = out_dir / model_file(tier, scale)
    max_diff = export_onnx(model, path)
    model_json = package_dir(npm_dir, tier) / "models" / f"x{scale}" / "model.json"
    shards = [shard for group in json.loads(model_json.read_text())["weightsManifest"] for shard in group["paths"]]
    log.info("exported", extra={"model": path.name, "bytes": path.stat().st_size, "max_diff": max_diff})
    return {
        "file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "tier": tier,
        "scale": scale,
        "parameters": sum(p.numel() for p in model.parameters()),
        "input": {"name": "rgb", "layout": "NCHW RGB float32 0..1, any batch/height/width"},
        "output": {"name": "rgb_out", "layout": f"NCHW RGB float32 0..1, height and width x{scale}"},
        "native_value_range": model.span,
        "source": {
            "model_json": f"models/x{scale}/model.json",
            "sha256": sha256(model_json),
            "shards": {shard: sha256(model_json.parent / shard) for shard in shards},
        },
        "onnx_vs_pytorch_max_abs_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npm-dir", type=Path, default=NPM_DIR, help="node_modules holding @upscalerjs/esrgan-*")
    parser.add_argument("--tier", default="medium", choices=("slim", "medium", "thick"))
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--out", type=Path, default=Path("models/upscaler"))
    args = parser.parse_args(argv)
    setup_logging("info")
    quiet_exporter()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    package = package_dir(args.npm_dir, args.tier)
    info = json.loads((package / "package.json").read_text())
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("models", {})
    for scale in args.scales:
        manifest["models"][model_file(args.tier, scale).removesuffix(".onnx")] = export(
            args.npm_dir, args.tier, scale, args.out)
    shutil.copyfile(package / "LICENSE", args.out / "LICENSE")
    manifest["source"] = {
        "packages": sorted(set(manifest.get("source", {}).get("packages", [])) | {f"{info['name']}@{info['version']}"}),
        "license": info["license"],
        "license_file": "LICENSE (copied from the package; the tiers share it)",
        "homepage": "https://upscalerjs.com",
        "origin": "idealo image-super-resolution RDN/RRDN architectures, trained on DIV2K by UpscalerJS",
    }
    manifest["produced_by"] = ("python -m training.upscaler.convert --tier TIER --scales 2 4 "
                               "--out models/upscaler  (after training/upscaler/reference.sh installs the packages)")
    manifest["tools"] = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                         "opset": OPSET}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote manifest", extra={"path": str(manifest_path)})


if __name__ == "__main__":
    main(sys.argv[1:])
