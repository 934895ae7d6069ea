"""What it costs to move one 4096x4096 photo across one gRPC hop: RAW vs PNG.

Prints encode/decode CPU time, bytes on the wire and the wall time of a real
loopback round trip (the upscaler at factor 1 validates the image and sends
it back), for a photo-like image and for a noisy scan.
Run: make bench (or python -m bench.transport_bench).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from revive.v1 import upscaler_pb2, upscaler_pb2_grpc

from services.common.imaging import PNG, RAW, from_proto, to_proto
from services.upscaler.service import DEFINITION as UPSCALER
from tests.cluster import channel, start_service
from tests.photos import portrait

REPEATS = 3


def timed(action, repeats: int = REPEATS) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    server = start_service(UPSCALER, "--engines", "lanczos")
    stub = upscaler_pb2_grpc.UpscalerStub(channel(server.port))
    photo = portrait(4096, 4096, seed=1)
    noisy = np.clip(photo.astype(np.int16) + np.random.default_rng(0).normal(0, 8, photo.shape), 0, 255).astype(np.uint8)
    print("One 4096x4096 RGB photo across one gRPC hop (loopback, median of 3)")
    print(f"{'image':8} {'encoding':8} {'MB':>7} {'encode s':>9} {'decode s':>9} {'round trip s':>13}")
    rows = {}
    for label, pixels in (("smooth", photo), ("noisy", noisy)):
        for name, encoding in (("RAW", RAW), ("PNG", PNG)):
            encode_s, message = timed(lambda: to_proto(pixels, encoding))
            decode_s, _ = timed(lambda: from_proto(message))
            request = upscaler_pb2.UpscaleRequest(image=message, factor=1)
            trip_s, _ = timed(lambda: stub.Upscale(request, timeout=120))
            total = encode_s + trip_s + decode_s
            rows[(label, name)] = total
            print(f"{label:8} {name:8} {len(message.data) / 1e6:7.1f} {encode_s:9.3f} {decode_s:9.3f} {trip_s:13.3f}")
    for label in ("smooth", "noisy"):
        ratio = rows[(label, "PNG")] / rows[(label, "RAW")]
        print(f"{label}: PNG costs {ratio:.1f}x the time of RAW per hop (encode + round trip + decode)")
    server.stop(0)


if __name__ == "__main__":
    main()
