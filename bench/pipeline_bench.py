"""Per-stage latency for 1 MP and 16 MP photos, and the gateway's own overhead.

Starts the local cluster (one process per service, as `make run` does), then
for each size runs the same work twice, side by side:
- direct: this process calls detect, N concurrent one-seed generates (with the
  gateway's surplus seeds when a face is found) and one UpscaleSet of N itself, with the photo already decoded and every
  hop returning PNG as the gateway asks: the services' own time;
- gateway: the photo is uploaded over HTTP and the JSON reply awaited.
Overhead = (gateway - direct) / gateway: upload, decoding, the damage overlay,
job bookkeeping, storage and HTTP.
Run: make bench (or python -m bench.pipeline_bench [--repeats N]).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import grpc
import requests
from revive.v1 import (
    common_pb2,
    detector_pb2,
    detector_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    upscaler_pb2,
    upscaler_pb2_grpc,
)

from bench.local_cluster import PORT_OFFSET, local_cluster
from gateway.config import GatewayConfig
from gateway.pipeline import surplus
from gateway.upstreams import channel_options
from services.common.imaging import PNG, to_proto
from tests.photos import encode, portrait, scratched

CASES = (("1 MP", 1024, 1024, 2), ("16 MP", 4096, 4096, 1))
CANDIDATES = 4


async def direct(photo, factor: int, seed: int) -> dict[str, float]:
    """The services' own time for one photo, stage by stage."""
    options = channel_options(256 << 20)
    detector = grpc.aio.insecure_channel(f"127.0.0.1:{50051 + PORT_OFFSET}", options=options)
    generator = grpc.aio.insecure_channel(f"127.0.0.1:{50052 + PORT_OFFSET}", options=options)
    upscaler = grpc.aio.insecure_channel(f"127.0.0.1:{50053 + PORT_OFFSET}", options=options)
    stages: dict[str, list[float]] = {"generate": [], "upscale": []}
    start = time.perf_counter()
    image = to_proto(photo)
    report = (await detector_pb2_grpc.DamageDetectorStub(detector).Detect(detector_pb2.DetectRequest(image=image, analyze_faces=True))).report
    detect_s = time.perf_counter() - start

    async def one(index: int) -> common_pb2.Image:
        begin = time.perf_counter()
        request = generator_pb2.GenerateRequest(image=image, damage=report, seeds=[seed + index], options=common_pb2.RestoreOptions(),
                                                output_encoding=PNG)
        candidate = [c async for c in generator_pb2_grpc.GeneratorStub(generator).Generate(request)][0]
        stages["generate"].append(time.perf_counter() - begin)
        return candidate.image

    # As many as the gateway generates: with a face found, surplus seeds for ranking to choose from.
    extra = surplus(CANDIDATES, report, common_pb2.RestoreOptions(), GatewayConfig().surplus_ratio)
    candidates = await asyncio.gather(*(one(i) for i in range(CANDIDATES + extra)))
    if factor > 1:  # as the gateway does: the kept candidates in one call
        begin = time.perf_counter()
        request = upscaler_pb2.UpscaleSetRequest(images=candidates[:CANDIDATES], factor=factor, output_encoding=PNG)
        [answer async for answer in upscaler_pb2_grpc.UpscalerStub(upscaler).UpscaleSet(request)]
        stages["upscale"].append(time.perf_counter() - begin)
    total = time.perf_counter() - start
    for channel in (detector, generator, upscaler):
        await channel.close()
    return {"detect": detect_s, "generate": statistics.mean(stages["generate"]),
            "upscale": statistics.mean(stages["upscale"]) if stages["upscale"] else 0.0, "total": total}


def through_gateway(url: str, upload: bytes, factor: int, seed: int) -> float:
    start = time.perf_counter()
    reply = requests.post(f"{url}/v1/restorations", files=[("photos", ("p.jpg", upload, "image/jpeg"))],
                          data={"candidates": str(CANDIDATES), "upscale": str(factor), "seed": str(seed)}, timeout=900)
    reply.raise_for_status()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as results, local_cluster(results) as url:
        print(f"Pipeline latency, {CANDIDATES} candidates, each service's default engine, CPU ({os.cpu_count()} cores), "
              f"median of {args.repeats}")
        print(f"{'size':6} {'upscale':>7} {'detect s':>9} {'generate s':>11} {'upscale s':>10} {'services s':>11} {'gateway s':>10} {'overhead':>9}")
        for label, width, height, factor in CASES:
            photo, _ = scratched(portrait(width, height, seed=2), count=6)
            upload = encode(photo, quality=92)
            runs, ends = [], []
            for repeat in range(args.repeats):
                # Alternate the order so neither side always runs on a warmer machine.
                if repeat % 2:
                    ends.append(through_gateway(url, upload, factor, repeat))
                    runs.append(asyncio.run(direct(photo, factor, repeat)))
                else:
                    runs.append(asyncio.run(direct(photo, factor, repeat)))
                    ends.append(through_gateway(url, upload, factor, repeat))
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            end_to_end = statistics.median(ends)
            overhead = (end_to_end - median["total"]) / end_to_end
            print(f"{label:6} {'x' + str(factor):>7} {median['detect']:9.3f} {median['generate']:11.3f} {median['upscale']:10.3f} "
                  f"{median['total']:11.3f} {end_to_end:10.3f} {overhead:9.1%}")
        print("generate: mean per candidate, candidates run concurrently; upscale: the photo's candidates as one "
              "UpscaleSet. Goal: overhead <= 5%.")


if __name__ == "__main__":
    main()
