"""Check the converted realesr-general-x4v3 against ncnn itself, on held-out photos, and record it.

ncnn (PyPI `ncnn`) runs the original .param/.bin in its own interpreter
(build/ncnn-venv, made on first use), because the project's environment has
no reason to carry it. Both see the same crops of the held-out photos; the
worst absolute difference (0..1 units) must stay under TOLERANCE, which
allows for ncnn's float16 storage of intermediate results.

usage: python -m training.realesrgan.reference [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from training.common.artifacts import REPO
from training.realesrgan.convert import NPM_DIR, ONNX_NAME, OUT_DIR, fetch
from training.upscaler import heldout

NCNN = "ncnn==1.0.20261020"
VENV = REPO / "build" / "ncnn-venv"
CROP = 96
#: ncnn keeps float16 activations by default on CPU; differences of a few levels of 255 are its rounding.
TOLERANCE = 0.03

#: Runs inside the ncnn interpreter: crops.npy -> ncnn.npy.
NCNN_SCRIPT = """
import sys, numpy as np, ncnn
stem, folder = sys.argv[1], sys.argv[2]
net = ncnn.Net()
net.load_param(stem + ".param"); net.load_model(stem + ".bin")
crops = np.load(folder + "/crops.npy")
outputs = []
for crop in crops:
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(np.ascontiguousarray(crop)))
    _, out = extractor.extract("output")
    outputs.append(np.array(out))
np.save(folder + "/ncnn.npy", np.stack(outputs))
"""


def ncnn_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", NCNN, "numpy"], check=True)
    return python


def crops() -> np.ndarray:
    """N x 3 x CROP x CROP float32 0..1: the centre of each held-out photo."""
    out = []
    for photo in heldout.photos().values():
        top, left = (photo.shape[0] - CROP) // 2, (photo.shape[1] - CROP) // 2
        out.append(photo[top:top + CROP, left:left + CROP].transpose(2, 0, 1).astype(np.float32) / 255)
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="write the result into models/realesrgan/manifest.json")
    args = parser.parse_args()
    stem = fetch(NPM_DIR)
    inputs = crops()
    session = ort.InferenceSession(str(OUT_DIR / ONNX_NAME), providers=["CPUExecutionProvider"])
    ours = np.concatenate([session.run(None, {"rgb": crop[None]})[0] for crop in inputs])
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "crops.npy", inputs)
        subprocess.run([str(ncnn_python()), "-c", NCNN_SCRIPT, str(stem), folder], check=True)
        theirs = np.clip(np.load(Path(folder) / "ncnn.npy"), 0, 1)
    worst = float(np.abs(ours - theirs).max())
    mean = float(np.abs(ours - theirs).mean())
    print(f"{len(inputs)} held-out crops of {CROP} px: max |ONNX - ncnn| {worst:.5f}, mean {mean:.6f} "
          f"(tolerance {TOLERANCE})")
    if worst > TOLERANCE:
        raise SystemExit("the converted model does not match ncnn")
    if args.record:
        path = OUT_DIR / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["reference_check"] = {"against": NCNN, "photos": sorted(heldout.photos()), "crop": CROP,
                                       "max_abs_diff": round(worst, 6), "mean_abs_diff": round(mean, 7),
                                       "tolerance": TOLERANCE, "command": "python -m training.realesrgan.reference "
                                                                         "--record"}
        path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
