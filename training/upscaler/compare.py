"""The converter check: the ONNX files against UpscalerJS run by TFJS under node.

`prepare` writes 64x64 crops of the held-out photos as PPM (so node and Python
read identical pixels); reference.mjs runs each tier and scale on them; `check`
runs the ONNX files on the same crops, prints the differences, fails beyond
TOLERANCE, and with --record stores the figures in the manifest.

usage (reference.sh runs all of it):
  python -m training.upscaler.compare prepare DIR
  python -m training.upscaler.compare check DIR --models DIR [--record MANIFEST]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from training.upscaler import heldout

CROP = 64
#: Largest |ONNX - TFJS| allowed, in 0..255 output units, before rounding to uint8.
TOLERANCE = 0.01


def prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rgb in heldout.photos().items():
        top, left = (rgb.shape[0] - CROP) // 2, (rgb.shape[1] - CROP) // 2
        Image.fromarray(rgb[top:top + CROP, left:left + CROP]).save(directory / f"{name}.ppm")


def check(directory: Path, models: Path) -> dict[str, dict]:
    """Per model: photos compared, max and mean |difference| (0..255), share of uint8 pixels that differ."""
    results = {}
    for run in sorted(path for path in directory.iterdir() if path.is_dir()):
        versions = json.loads((run / "versions.json").read_text())
        span = versions["inputRange"][1]
        session = ort.InferenceSession(str(models / f"{run.name}.onnx"), providers=["CPUExecutionProvider"])
        worst, total, differing, count = 0.0, 0.0, 0, 0
        photos = sorted(run.glob("*.f32"))
        for output in photos:
            rgb = np.asarray(Image.open(directory / f"{output.stem}.ppm"), np.float32) / 255
            ours = session.run(None, {"rgb": rgb.transpose(2, 0, 1)[None]})[0][0].transpose(1, 2, 0) * 255
            theirs = np.clip(np.fromfile(output, "<f4").reshape(ours.shape) / span, 0, 1) * 255
            difference = np.abs(ours - theirs)
            worst, total = max(worst, float(difference.max())), total + float(difference.sum())
            differing += int((np.round(ours) != np.round(theirs)).sum())
            count += difference.size
        results[run.name] = {
            "photos": [output.stem for output in photos],
            "reference": f"{versions['package']} on tfjs {versions['tfjs']} ({versions['backend']} backend)",
            "max_abs_diff_0_255": worst,
            "mean_abs_diff_0_255": total / count,
            "uint8_values_differing": differing / count,
            "pass": worst <= TOLERANCE,
        }
        print(f"{run.name:18s} photos={len(photos)} max|d|={worst:.5f} mean|d|={total / count:.2e} "
              f"uint8 differing={differing / count:.2e}  {'ok' if worst <= TOLERANCE else 'FAIL'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare").add_argument("directory", type=Path)
    checking = commands.add_parser("check")
    checking.add_argument("directory", type=Path, help="prepare's directory, one subdirectory per model run")
    checking.add_argument("--models", type=Path, default=Path("models/upscaler"))
    checking.add_argument("--record", type=Path, help="manifest.json to store the figures in")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.directory)
        return 0
    results = check(args.directory, args.models)
    if args.record:
        manifest = json.loads(args.record.read_text())
        manifest["reference_check"] = {
            "what": f"ONNX on CPU vs the npm package run by TFJS under node, on {CROP}x{CROP} crops "
                    "of held-out photos (training/upscaler/reference.sh)",
            "tolerance": f"max |difference| <= {TOLERANCE} in 0..255 output units, before rounding",
            "results": results,
        }
        args.record.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0 if all(result["pass"] for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
