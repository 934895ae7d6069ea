"""The gateway under 4096x4096 photos: its peak memory and the event loop's worst stall.

One request of four 4096x4096 photos, 4 candidates each, x1, through the
`make run` topology (the embedded default). Printed side by side: the
gateway's peak resident memory with the pixel budget (gateway/budget.py) at
its default and with it lifted, their ratio, and the longest the event loop
was blocked meanwhile (from the gateway's own metric). Goals (#18): peak
<= 1.5 GB with every photo done; worst stall <= 50 ms.

Run: python -m bench.gateway_memory_bench [--photos 4] [--side 4096] [--candidates 4]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.local_cluster import HTTP_PORT, local_cluster
from tests.photos import encode, portrait, scratched


def gateway_pid() -> int:
    """The gateway process the launcher started (python -m gateway on the bench's HTTP port)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gateway" in command and b"-m" in command and str(HTTP_PORT).encode() in b" ".join(command):
            return int(proc.name)
    raise RuntimeError("no gateway process found")


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


def worst_stall(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=30).text
    return next(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                if sample.name == "revive_gateway_event_loop_worst_stall_seconds")


def big_photo(side: int, seed: int) -> bytes:
    """A damaged portrait of `side` px, tiled from a small one (drawing it whole would take minutes)."""
    tile, _ = scratched(portrait(512, 512, seed=seed), count=4, seed=seed)
    return encode(np.tile(tile, (side // 512, side // 512, 1)), quality=90)


class PeakMemory:
    """While open, samples the resident memory of some processes every 50 ms; `peaks` holds each one's highest,
    `idle` what they held when it opened."""

    def __init__(self, pids: list[int]) -> None:
        self.idle = {pid: rss_mb(pid) for pid in pids}
        self.peaks = dict(self.idle)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in self.peaks:
                try:
                    self.peaks[pid] = max(self.peaks[pid], rss_mb(pid))
                except (OSError, StopIteration):  # a process that has gone
                    pass
            time.sleep(0.05)

    def __enter__(self) -> "PeakMemory":
        self._sampler.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._sampler.join()


def run(photos: list[bytes], candidates: int, **settings: str) -> dict:
    with tempfile.TemporaryDirectory() as results, local_cluster(results, **settings) as url:
        pid = gateway_pid()
        with PeakMemory([pid]) as memory:
            start = time.perf_counter()
            reply = requests.post(f"{url}/v1/restorations", data={"candidates": str(candidates)},
                                  files=[("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)],
                                  timeout=3600)
            seconds = time.perf_counter() - start
        states = [photo["status"] for photo in reply.json()["photos"]]
        return {"peak_mb": memory.peaks[pid], "idle_mb": memory.idle[pid], "seconds": seconds,
                "done": states.count("done"), "photos": len(states), "stall_ms": worst_stall(url) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()
    photos = [big_photo(args.side, seed) for seed in range(args.photos)]
    print(f"{args.photos} photos of {args.side}x{args.side}, {args.candidates} candidates each, x1, one request")
    rows = {"pixel budget (default, 1 GiB here)": run(photos, args.candidates),
            "budget lifted (100 GiB)": run(photos, args.candidates, memory_budget_mb="102400")}
    print(f"{'':36} {'peak RSS':>10} {'idle':>8} {'done':>6} {'time':>8} {'worst loop stall':>17}")
    for label, row in rows.items():
        print(f"{label:36} {row['peak_mb']:8.0f} MB {row['idle_mb']:6.0f} MB {row['done']:>3}/{row['photos']}"
              f" {row['seconds']:7.1f}s {row['stall_ms']:14.0f} ms")
    budgeted, lifted = rows.values()
    print(f"peak with the budget / without: {budgeted['peak_mb'] / lifted['peak_mb']:.2f}x   "
          f"(goals: peak <= 1536 MB with every photo done; worst stall <= 50 ms)")


if __name__ == "__main__":
    main()
