"""Upscalers on photos degraded the way scans are: which one to serve, on CPU and on GPU.

The held-out photos are downscaled x4 (area), then blurred, given grain and
JPEG-compressed (fixed seeds): what an old print's scan looks like, unlike
the clean bicubic downscale bench/upscaler_bench.py measures. Each engine
enlarges them x4; printed side by side: Y-PSNR and SSIM against the
original, and seconds per output megapixel on this machine.

The rule the defaults follow (README, "Choosing the upscaler"): the engine
with the best mean Y-PSNR on these degraded photos, among those fast enough
for the deployment: on CPU, within 3 s per output megapixel on 2 cores (a
1 MP photo's four candidates at x2 in about 50 s of upscaling shared by two
cores is the most a request can afford); on GPU every engine qualifies.

Run: python -m bench.degraded_upscale_bench [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from bench.upscaler_bench import psnr_ssim
from services.upscaler.engines.fidelity import FidelityUpscaler
from services.upscaler.engines.lanczos import LanczosUpscaler
from services.upscaler.engines.realesrgan import RealEsrganUpscaler
from services.upscaler.service import DEFINITION
from training.upscaler import heldout

FACTOR = 4


def degrade(photo: np.ndarray, seed: int) -> np.ndarray:
    """Area x4 down, blur, grain, JPEG 50: a small, soft, noisy scan of `photo`."""
    rng = np.random.default_rng(seed)
    height, width = photo.shape[0] // FACTOR, photo.shape[1] // FACTOR
    small = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), 0.8)
    small = np.clip(small + rng.normal(0, 5, small.shape), 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 50])
    return np.ascontiguousarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = DEFINITION.parse(["--threads", str(args.threads), "--providers", "cpu"])
    engines = {"lanczos": LanczosUpscaler(config), "fidelity": FidelityUpscaler(config),
               "realesrgan": RealEsrganUpscaler(config)}
    photos = {name: photo[: photo.shape[0] // FACTOR * FACTOR, : photo.shape[1] // FACTOR * FACTOR]
              for name, photo in heldout.photos().items()}
    print(f"x{FACTOR} of held-out photos degraded like scans (blur 0.8, grain 5, JPEG 50); Y-PSNR dB / SSIM")
    print(f"{'photo':12}" + "".join(f" {name:>18}" for name in engines))
    totals = {name: [0.0, 0.0, 0.0, 0.0] for name in engines}  # psnr, ssim, seconds, output MP
    for index, (label, photo) in enumerate(photos.items()):
        small = degrade(photo, index)
        cells = []
        for name, engine in engines.items():
            start = time.perf_counter()
            out = engine.upscale(small, FACTOR)
            seconds = time.perf_counter() - start
            psnr, ssim = psnr_ssim(photo, out, FACTOR)
            for slot, value in enumerate((psnr, ssim, seconds, out.shape[0] * out.shape[1] / 1e6)):
                totals[name][slot] += value
            cells.append(f" {psnr:10.2f} / {ssim:.3f}")
        print(f"{label:12}" + "".join(cells), flush=True)
    count = len(photos)
    print(f"{'mean':12}" + "".join(f" {t[0] / count:10.2f} / {t[1] / count:.3f}" for t in totals.values()))
    print(f"{'s / out MP':12}" + "".join(f" {t[2] / t[3]:18.3f}" for t in totals.values()))


if __name__ == "__main__":
    main()
