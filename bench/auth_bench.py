"""What API keys cost: the authentication and ownership work per request, against a restoration.

Measured side by side in one run: the per-request work of a keyed gateway
(hashing the presented key, looking it up, the ownership check) timed over
many calls, and the same small restoration through an open and a keyed
gateway (real servers on loopback; median of several). Goal (#16): keys cost
<= 1% of an end-to-end restoration.

Run: python -m bench.auth_bench [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import requests

from gateway.auth import ApiKey, Keys, bearer, digest
from services.detector.service import DEFINITION as DETECTOR
from services.generator.service import DEFINITION as GENERATOR
from services.upscaler.service import DEFINITION as UPSCALER
from tests.cluster import GatewayThread, gateway_config, start_service
from tests.photos import encode, portrait


def per_request_seconds(calls: int = 100_000) -> float:
    keys = Keys([ApiKey(f"team-{i}", digest(f"rv_secret-{i}")) for i in range(100)])
    header = "Bearer rv_secret-42"
    start = time.perf_counter()
    for _ in range(calls):
        key = keys.identify(bearer(header))
        assert key is not None and key.may_see("team-42")
    return (time.perf_counter() - start) / calls


def restore_seconds(url: str, photo: bytes, headers: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reply = requests.post(f"{url}/v1/restorations", files=[("photos", ("p.jpg", photo, "image/jpeg"))],
                              data={"candidates": "2", "upscale": "2"}, headers=headers, timeout=300)
        assert reply.status_code == 200, reply.text
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    servers = [start_service(DETECTOR), start_service(GENERATOR), start_service(UPSCALER, "--engines", "lanczos")]
    targets = [f"127.0.0.1:{server.port}" for server in servers]
    photo = encode(portrait(640, 800, seed=3))
    try:
        with tempfile.TemporaryDirectory() as folder:
            keys_file = Path(folder) / "keys.json"
            keys_file.write_text('{"keys": [{"name": "bench", "sha256": "%s"}]}' % digest("rv_bench"))
            open_gateway = GatewayThread(gateway_config(Path(folder) / "a", *targets))
            keyed_gateway = GatewayThread(gateway_config(Path(folder) / "b", *targets, "--api-keys-file", str(keys_file)))
            try:
                restore_seconds(open_gateway.url, photo, {}, 1)
                plain = restore_seconds(open_gateway.url, photo, {}, args.repeats)
                keyed = restore_seconds(keyed_gateway.url, photo, {"Authorization": "Bearer rv_bench"}, args.repeats)
            finally:
                open_gateway.stop()
                keyed_gateway.stop()
    finally:
        for server in servers:
            server.stop(0)
    work = per_request_seconds()
    print(f"640x800 photo, 2 candidates, x2, median of {args.repeats}: open {plain:.3f} s   keyed {keyed:.3f} s "
          f"({100 * (keyed / plain - 1):+.1f}%, mostly noise)")
    print(f"authentication + ownership per request: {work * 1e6:.1f} us = {100 * work / plain:.4f}% of a restoration "
          f"(goal <= 1%)")


if __name__ == "__main__":
    main()
