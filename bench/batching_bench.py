"""Dynamic batching across requests (services/common/batching.py): throughput and lone-request latency.

A real upscaler server on loopback, admitting 8 inferences at once, upscales
256x256 photos x2 in 128-pixel tiles. Printed side by side for batching off
(--dynamic-batch 1) and on (--dynamic-batch 8, 2 ms): requests per second at
concurrency 8, and the median latency of one request at a time. Goals (#15):
>= 1.5x the throughput at concurrency 8; latency at concurrency 1 within 5%.

Run: python -m bench.batching_bench [--engine fidelity] [--requests 48]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from revive.v1 import upscaler_pb2, upscaler_pb2_grpc

from services.common.imaging import to_proto
from services.upscaler.service import DEFINITION
from tests.cluster import channel, start_service


def measure(engine: str, batch: int, requests: int, threads: int) -> tuple[float, float]:
    """(requests per second at concurrency 8, median seconds of a lone request)."""
    server = start_service(DEFINITION, "--engines", engine, "--threads", str(threads), "--max-concurrency", "8",
                           "--max-queue", "8", "--upscaler-tile", "128", "--dynamic-batch", str(batch),
                           "--batch-delay-ms", "2")
    try:
        stub = upscaler_pb2_grpc.UpscalerStub(channel(server.port))
        photo = to_proto(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
        request = upscaler_pb2.UpscaleRequest(image=photo, factor=2)
        stub.Upscale(request, timeout=120)
        lone = []
        for _ in range(5):
            start = time.perf_counter()
            stub.Upscale(request, timeout=120)
            lone.append(time.perf_counter() - start)
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: stub.Upscale(request, timeout=300), range(requests)))
        return requests / (time.perf_counter() - start), statistics.median(lone)
    finally:
        server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="fidelity")
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    off = measure(args.engine, 1, args.requests, args.threads)
    on = measure(args.engine, 8, args.requests, args.threads)
    print(f"{args.engine}, 256x256 x2 in 128-px tiles, {args.threads} threads; {args.requests} requests at concurrency 8")
    print(f"{'':22} {'requests/s':>11} {'lone request':>13}")
    print(f"{'batching off':22} {off[0]:11.2f} {off[1] * 1000:11.0f} ms")
    print(f"{'batching on (8, 2 ms)':22} {on[0]:11.2f} {on[1] * 1000:11.0f} ms")
    print(f"throughput on/off {on[0] / off[0]:.2f}x (goal >= 1.5x); lone latency on/off {on[1] / off[1]:.2f}x "
          f"(goal <= 1.05x)")


if __name__ == "__main__":
    main()
