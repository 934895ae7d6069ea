"""Mutual TLS against plaintext: one 4096x4096 photo across one gRPC hop on loopback, side by side.

Two hops: an upscaler asked for x1 returns the photo as it came, so that
round trip is transport alone (48 MB each way, encrypted or not: the worst
case); the detector's hop is a real one (the photo there, a damage report
with four PNG masks back, the classical engine's work between). Goal (#16):
mTLS costs at most 10% per hop.

Run: python -m bench.mtls_bench [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from revive.v1 import detector_pb2, upscaler_pb2

from deploy.local.tls import make_local_tls
from services.common.imaging import to_proto
from services.common.server import message_size_options
from services.common.tls import channel_credentials
from services.detector.service import DEFINITION as DETECTOR
from services.upscaler.service import DEFINITION
from tests.cluster import start_service


def round_trip(flags: list[str], credentials: grpc.ChannelCredentials | None, repeats: int,
               service: str = "upscaler") -> float:
    definition, engine, method = {
        "upscaler": (DEFINITION, "lanczos", "/revive.v1.Upscaler/Upscale"),
        "detector": (DETECTOR, "classical", "/revive.v1.DamageDetector/Detect"),
    }[service]
    server = start_service(definition, "--engines", engine, *flags)
    try:
        options = message_size_options(256 << 20)
        target = f"localhost:{server.port}"
        channel = (grpc.secure_channel(target, credentials, options) if credentials
                   else grpc.insecure_channel(target, options))
        photo = np.random.default_rng(0).integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
        request = (upscaler_pb2.UpscaleRequest(image=to_proto(photo), factor=1) if service == "upscaler"
                   else detector_pb2.DetectRequest(image=to_proto(photo))).SerializeToString()
        call = channel.unary_unary(method, lambda b: b, lambda b: b)
        call(request, timeout=120)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call(request, timeout=120)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"4096x4096 RAW photo, one hop each way on loopback, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        tls = make_local_tls(Path(folder))
        credentials = channel_credentials(str(tls.ca), str(tls.client_cert), str(tls.client_key))
        for service, what in (("upscaler", "transport alone (upscale x1)"), ("detector", "a detect")):
            plain = round_trip([], None, args.repeats, service)
            secure = round_trip(tls.service_flags(), credentials, args.repeats, service)
            print(f"{what:30} plaintext {plain:.3f} s   mutual TLS {secure:.3f} s   -> mTLS costs "
                  f"{100 * (secure / plain - 1):+.1f}% (goal <= +10%)")


if __name__ == "__main__":
    main()
