"""Job latency under load: N concurrent jobs on the `make cluster` topology.

Submits every job at once (by default two small photos, four candidates each:
#15's load), follows them to the end and prints p50/p99 latency, throughput and
every job that did not finish for one and for two replicas per service, side by
side. Loopback only, bounded in count and time.
Run: python -m bench.load_bench [--jobs 50] [--photos 2] [--candidates 4].
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.local_cluster import local_cluster
from tests.photos import encode, portrait


def run_job(url: str, photos: list[bytes], candidates: int) -> tuple[float, str]:
    start = time.perf_counter()
    reply = requests.post(f"{url}/v1/jobs", files=[("photos", (f"p{i}.jpg", photo, "image/jpeg"))
                                                   for i, photo in enumerate(photos)],
                          data={"candidates": str(candidates)}, timeout=60)
    if reply.status_code != 202:
        return time.perf_counter() - start, f"http {reply.status_code}"
    job_id = reply.json()["id"]
    deadline = start + 1800
    while time.perf_counter() < deadline:
        state = requests.get(f"{url}/v1/jobs/{job_id}", timeout=30).json()["state"]
        if state not in ("queued", "running"):
            return time.perf_counter() - start, state
        time.sleep(0.05)
    return time.perf_counter() - start, "timeout"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--size", type=int, default=512, help="photo side in pixels")
    parser.add_argument("--photos", type=int, default=2, help="photos per job")
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()
    photos = [encode(portrait(args.size, args.size, seed=9 + i)) for i in range(args.photos)]
    print(f"{args.jobs} concurrent jobs of {args.photos} photos ({args.size}x{args.size}), {args.candidates} "
          f"candidates each, default engines")
    print(f"{'replicas':>8} {'done':>5} {'p50 s':>7} {'p99 s':>7} {'wall s':>7} {'jobs/s':>7}")
    for replicas in (1, 2):
        with tempfile.TemporaryDirectory() as results, local_cluster(results, replicas) as url:
            start = time.perf_counter()
            with ThreadPoolExecutor(args.jobs) as pool:
                outcomes = list(pool.map(lambda _i: run_job(url, photos, args.candidates), range(args.jobs)))
            wall = time.perf_counter() - start
        latencies = [seconds for seconds, state in outcomes if state == "done"]
        done = len(latencies)
        print(f"{replicas:8d} {done:5d} {percentile(latencies, 0.5):7.2f} {percentile(latencies, 0.99):7.2f} "
              f"{wall:7.2f} {done / wall:7.2f}")
        lost = [state for _seconds, state in outcomes if state != "done"]
        if lost:
            print(f"  not done: {lost}")
    print(f"p50/p99 over jobs, submit to done; {os.cpu_count()} cores here, so a second replica adds no CPU, only isolation")


if __name__ == "__main__":
    main()
