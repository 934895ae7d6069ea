"""Learned (ESRGAN tiers) vs classical upscaling: quality, throughput, the 1024 -> 4096 case.

Prints, side by side:
- PSNR and SSIM on the Y channel (BT.601, border of `factor` pixels cropped)
  of held-out photos downscaled by 2 and by 4 (Pillow bicubic, antialiased)
  and brought back by bicubic, Lanczos and each ESRGAN tier; the gain over
  bicubic in dB (goal: >= +1.5 dB at x4);
- throughput in output megapixels per second on this machine's cores,
  ONNX Runtime vs torch eager (the PyTorch rebuild, when the npm packages are
  installed), per tier at x4 on one 256x256 -> 1024x1024 call;
- the engine's time and the process's peak memory for 1024x1024 -> 4096x4096
  (goal: <= 2 GB) at the default tiling and at alternatives (BIG_RUNS), each
  in a fresh subprocess so nothing else counts.

Held-out photos: scikit-image's bundled samples (services/upscaler/convert/heldout.py).
ONNX files for all tiers: services/upscaler/convert/reference.sh (writes build/tiers/upscaler).
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
from PIL import Image
from skimage.metrics import structural_similarity
from tqdm import tqdm

from services.upscaler.convert import heldout
from services.upscaler.convert.convert import NPM_DIR, build, package_dir
from services.upscaler.engines.esrgan import EsrganUpscaler, model_path
from services.upscaler.service import DEFINITION

TIERS = ("slim", "medium", "thick")
FACTORS = (2, 4)
#: Models directories: the committed one, then where reference.sh converts every tier.
MODELS_DIRS = (Path("models"), Path("build/tiers"))
Upscale = Callable[[np.ndarray, int], np.ndarray]


def models_dir(tier: str) -> Path | None:
    """The first models directory holding the tier at every factor."""
    return next((d for d in MODELS_DIRS if all(model_path(d, tier, f).exists() for f in FACTORS)), None)


def find_model(tier: str, factor: int) -> Path | None:
    directory = models_dir(tier)
    return model_path(directory, tier, factor) if directory else None


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y in 16..235, as super-resolution papers report it."""
    rgb = rgb.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


def psnr_ssim(truth: np.ndarray, guess: np.ndarray, border: int) -> tuple[float, float]:
    a, b = luma(truth)[border:-border, border:-border], luma(guess)[border:-border, border:-border]
    mse = float(np.mean((a - b) ** 2))
    return 10 * np.log10(255 ** 2 / mse), float(structural_similarity(a, b, data_range=255))


def onnx_upscaler(path: Path, threads: int) -> Upscale:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(rgb: np.ndarray, factor: int) -> np.ndarray:
        batch = rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255
        return np.clip(session.run(None, {"rgb": batch})[0][0].transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8)

    return run


def classical(interpolation: int) -> Upscale:
    return lambda rgb, factor: cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=interpolation)


def quality(threads: int) -> dict:
    photos = heldout.photos()
    results: dict = {}
    for factor in FACTORS:
        methods: dict[str, Upscale] = {"bicubic": classical(cv2.INTER_CUBIC), "lanczos": classical(cv2.INTER_LANCZOS4)}
        for tier in TIERS:
            path = find_model(tier, factor)
            if path:
                methods[f"esrgan-{tier}"] = onnx_upscaler(path, threads)
        scores = {name: [] for name in methods}
        for photo in tqdm(photos.values(), desc=f"x{factor} photos", leave=False):
            height, width = (side // factor * factor for side in photo.shape[:2])
            truth = photo[:height, :width]
            small = np.asarray(Image.fromarray(truth).resize((width // factor, height // factor), Image.BICUBIC))
            for method, upscale in methods.items():
                scores[method].append(psnr_ssim(truth, upscale(small, factor), factor))
        results[f"x{factor}"] = {
            method: {"psnr": float(np.mean([p for p, _ in values])), "ssim": float(np.mean([s for _, s in values]))}
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
    for tier in TIERS:
        path = find_model(tier, 4)
        if path is None:
            continue
        upscale = onnx_upscaler(path, threads)
        upscale(rgb, 4)
        row = {"onnxruntime_mp_per_s": out_mp / timed(lambda: upscale(rgb, 4))}
        if package_dir(NPM_DIR, tier).exists():
            model = build(NPM_DIR, tier, 4)
            batch = torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255)
            with torch.inference_mode():
                model(batch)
                row["torch_eager_mp_per_s"] = out_mp / timed(lambda: model(batch))
            row["ratio_onnx_over_torch"] = row["onnxruntime_mp_per_s"] / row["torch_eager_mp_per_s"]
        results[tier] = row
    return {"input": f"{side}x{side} -> {side * 4}x{side * 4}", "threads": threads, "tiers": results}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries that
    over from the parent across fork and exec, so it would report the bench's own peak."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024


def big_run(tier: str, threads: int) -> dict:
    """Time and peak RSS of one 1024 -> 4096 engine call, in this (fresh) process."""
    config = DEFINITION.parse(["--threads", str(threads), "--models-dir", str(models_dir(tier))])
    engine = EsrganUpscaler(config, tier=tier)
    photo = cv2.resize(heldout.load("astronaut"), (1024, 1024), interpolation=cv2.INTER_AREA)
    engine.upscale(photo[:64, :64], 4)
    start = time.perf_counter()
    out = engine.upscale(photo, 4)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    return {"tier": tier, "output": list(out.shape), "seconds": seconds, "peak_rss_mb": peak_mb,
            "tile": engine.tile, "overlap": engine.overlap, "batch": engine.batch, "threads": threads,
            "output_mp_per_s": out.shape[0] * out.shape[1] / 1e6 / seconds}


#: (tier, tile, batch) for the 1024 -> 4096 runs: the engine's defaults first, then the alternatives.
BIG_RUNS = (("medium", 256, 1), ("medium", 256, 2), ("medium", 128, 4), ("thick", 256, 1))


def big(tier: str, tile: int, batch: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), REVIVE_UPSCALER_TILE=str(tile),
               REVIVE_UPSCALER_BATCH=str(batch))
    command = [sys.executable, "-m", "bench.upscaler_bench", "--big-only", tier, "--threads", str(threads)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(figures: dict) -> None:
    print(f"\nQuality (Y channel; mean over {len(figures['quality']['photos'])} held-out photos)")
    for factor, methods in figures["quality"]["scores"].items():
        base = methods["bicubic"]["psnr"]
        print(f"  {factor}: {'method':16s} {'PSNR dB':>8s} {'vs bicubic':>10s} {'SSIM':>7s}")
        for method, score in methods.items():
            print(f"      {method:16s} {score['psnr']:8.2f} {score['psnr'] - base:+10.2f} {score['ssim']:7.4f}")
    speed = figures["throughput"]
    print(f"\nThroughput at x4, {speed['input']}, {speed['threads']} threads (output MP/s)")
    for tier, row in speed["tiers"].items():
        torch_figure = f"{row['torch_eager_mp_per_s']:.3f}" if "torch_eager_mp_per_s" in row else "n/a"
        ratio = f"{row['ratio_onnx_over_torch']:.2f}x" if "ratio_onnx_over_torch" in row else ""
        print(f"  {tier:7s} onnxruntime {row['onnxruntime_mp_per_s']:.3f}  torch eager {torch_figure}  {ratio}")
    print("\n1024x1024 -> 4096x4096 through the esrgan engine (peak RSS goal <= 2048 MB)")
    for run in figures["big"]:
        print(f"  {run['tier']:7s} tile {run['tile']:4d} overlap {run['overlap']} batch {run['batch']} "
              f"({run['threads']} threads): {run['seconds']:6.1f} s  {run['output_mp_per_s']:.2f} MP/s  "
              f"peak RSS {run['peak_rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--record", type=Path, help="manifest.json to store the figures in")
    parser.add_argument("--big-only", metavar="TIER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.big_only:
        print(json.dumps(big_run(args.big_only, args.threads)))
        return
    figures = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
               "quality": quality(args.threads), "throughput": throughput(args.threads),
               "big": [big(tier, tile, batch, args.threads) for tier, tile, batch in tqdm(BIG_RUNS, desc="1024->4096")]}
    report(figures)
    if args.record:
        manifest = json.loads(args.record.read_text())
        manifest["eval"] = figures
        args.record.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
