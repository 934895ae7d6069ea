"""One request as #15 states it, this checkout against an older one, side by side in one run.

A 1 MP photo, 4 candidates, x2, through the cluster `make run` starts (default engines, one replica per
service), timed from upload to the last candidate stored: once on a damaged photo without faces and
once on a group photo with three (their identity checks draw surplus seeds). The same requests then go
to the cluster of a git ref (default: the code before #15, e9e9258), checked out beside this one under
var/bench-trees/ with its own generated protos, and the ratios are printed. Goals: <= 20 s, >= 1.8x
faster than the code before #15.
Run: python -m bench.request_bench [--baseline e9e9258] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import requests

from bench.local_cluster import ROOT, local_cluster
from tests.photos import encode, portrait, scratched

BEFORE_15 = "e9e9258"
FACES = ROOT / "tests" / "data" / "faces" / "sample1.jpg"


def photos() -> dict[str, bytes]:
    """About a megapixel each: a damaged photo without a face, and three faces."""
    damaged, _ = scratched(portrait(1024, 1024), count=8)
    group = cv2.resize(cv2.imread(str(FACES)), (1224, 816), interpolation=cv2.INTER_AREA)
    return {"1 MP, no face": encode(damaged), "1 MP, three faces": cv2.imencode(".jpg", group)[1].tobytes()}


def checkout(ref: str) -> Path:
    """A detached worktree of `ref` under var/bench-trees with its protos generated, made once."""
    tree = ROOT / "var" / "bench-trees" / ref
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    generated = tree / "build" / "gen"
    if not generated.exists():
        generated.mkdir(parents=True)
        protos = sorted(str(p.relative_to(tree)) for p in (tree / "protos" / "revive" / "v1").glob("*.proto"))
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"--python_out={generated}",
                        f"--grpc_python_out={generated}", *protos], cwd=tree, check=True)
    return tree


def timed_request(url: str, photo: bytes) -> float:
    start = time.perf_counter()
    reply = requests.post(f"{url}/v1/restorations", files=[("photos", ("photo.jpg", photo, "image/jpeg"))],
                          data={"candidates": "4", "upscale": "2"}, timeout=900)
    seconds = time.perf_counter() - start
    body = reply.json()
    done = [p for p in body.get("photos", []) if p["status"] == "done" and len(p["candidates"]) == 4]
    if reply.status_code != 200 or not done:
        raise RuntimeError(f"the request failed: {reply.status_code} {str(body)[:300]}")
    return seconds


def measure(root: Path, cases: dict[str, bytes], repeats: int) -> dict[str, float]:
    """Median seconds per case on the cluster of checkout `root` (after one warm-up request)."""
    with tempfile.TemporaryDirectory() as results, local_cluster(results, root=root, flags=()) as url:
        timed_request(url, next(iter(cases.values())))
        return {name: statistics.median(timed_request(url, photo) for _ in range(repeats))
                for name, photo in cases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BEFORE_15, help="git ref to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cases = photos()
    now = measure(ROOT, cases, args.repeats)
    before = measure(checkout(args.baseline), cases, args.repeats)
    print(f"\n1 MP, 4 candidates, x2, median of {args.repeats} (after a warm-up), one replica per service")
    print(f"{'photo':20} {'this checkout':>14} {args.baseline:>14} {'speed-up':>9}   goal: <= 20 s, >= 1.8x")
    for name in cases:
        print(f"{name:20} {now[name]:13.1f}s {before[name]:13.1f}s {before[name] / now[name]:8.2f}x")


if __name__ == "__main__":
    main()
