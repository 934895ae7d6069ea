"""The gateway's event loop under large photos: its worst stall, RAW transit against PNG transit.

Every copy of a request's bytes holds the interpreter, so the loop's worst stall
grows with what the gateway sends per call (gateway/messages.py). Through the
`make run` topology, side by side in one run: a grainy 4096x4096 scan (2
candidates, x1) sent RAW and with the default PNG transit (--png-transit-mb),
and a 2048x2048 one (2 candidates, x2, so 4096x4096 candidates come back; 12
MB of pixels, under the PNG threshold, so RAW either way). Printed: the worst
stall the gateway's own metric saw, and wall time. Goal (#18): worst stall <= 50 ms during a 4096x4096 request.

Run: python -m bench.loop_stall_bench
"""

from __future__ import annotations

import tempfile
import time

import cv2
import numpy as np
import requests
from skimage import data as samples

from bench.gateway_memory_bench import worst_stall
from bench.local_cluster import local_cluster
from tests.photos import encode


def grainy_scan(side: int) -> bytes:
    """A real photo (scikit-image's astronaut) at `side` px with scan grain: it compresses like a scan,
    not like a flat synthetic picture."""
    rgb = cv2.resize(samples.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    grain = np.random.default_rng(0).normal(0, 3, rgb.shape)
    return encode(np.clip(rgb + grain, 0, 255).astype(np.uint8), quality=95)


def run(photo: bytes, upscale: int, png_transit_mb: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as results, local_cluster(results, png_transit_mb=png_transit_mb) as url:
        start = time.perf_counter()
        reply = requests.post(f"{url}/v1/restorations", data={"candidates": "2", "upscale": str(upscale)},
                              files=[("photos", ("scan.jpg", photo, "image/jpeg"))], timeout=3600)
        seconds = time.perf_counter() - start
        reply.raise_for_status()
        return worst_stall(url) * 1000, seconds


def main() -> None:
    large = grainy_scan(4096)
    raw_stall, raw_seconds = run(large, 1, png_transit_mb="100000")
    png_stall, png_seconds = run(large, 1, png_transit_mb="16")
    back_stall, back_seconds = run(grainy_scan(2048), 2, png_transit_mb="16")
    print(f"{'':34} {'RAW transit':>22} {'PNG transit (default)':>24} {'stall ratio':>12}")
    print(f"{'4096x4096 in, 2 candidates, x1':34} {raw_stall:8.0f} ms {raw_seconds:7.1f} s {png_stall:11.0f} ms "
          f"{png_seconds:7.1f} s {raw_stall / max(png_stall, 1e-3):11.1f}x")
    print(f"{'2048x2048 in, 2 candidates, x2':34} {'(RAW either way)':>22} {back_stall:11.0f} ms {back_seconds:7.1f} s")
    print("(goal: worst stall <= 50 ms during a 4096x4096 request)")


if __name__ == "__main__":
    main()
