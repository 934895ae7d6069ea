"""`make cluster` under ten 4096x4096 photos: every process's peak memory against its Kubernetes limit.

Two replicas of each service behind the gateway (the Kubernetes topology on one
machine), one request of ten 4096x4096 scans, 4 candidates each, x1. Each
process's resident memory is sampled every 50 ms; printed beside the memory
limit its Deployment has in deploy/k8s/base (the cpu overlay's sizes), with the
ratio. Goal (#18): no process over its limit, every photo done.

Run: python -m bench.cluster_memory_bench [--photos 10] [--side 4096] [--candidates 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests
import yaml

from bench.gateway_memory_bench import PeakMemory
from bench.local_cluster import PORT_OFFSET, ROOT, local_cluster
from bench.loop_stall_bench import grainy_scan

UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}


def k8s_limits_mb() -> dict[str, float]:
    """Memory limit of each Deployment's container in the base manifests, MiB, by service name."""
    limits = {}
    for path in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document.get("kind") != "Deployment":
                continue
            limit = document["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            limits[document["metadata"]["name"].removeprefix("revive-")] = float(limit[:-2]) * UNITS[limit[-2:]]
    return limits


def cluster_processes() -> dict[int, str]:
    """pid -> "detector-0", "gateway", ...: the children of the bench's launcher."""
    launcher = None
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"deploy.local.launch" in command and str(PORT_OFFSET).encode() in command:
                launcher = proc.name
    if launcher is None:
        raise RuntimeError("no launcher process found")
    children: dict[int, str] = {}
    counts: dict[str, int] = {}
    for proc in sorted(Path("/proc").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0):
        if not proc.name.isdigit():
            continue
        try:
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent != launcher:
            continue
        module = command[command.index(b"-m") + 1].decode()
        name = module.removeprefix("services.")
        if name != "gateway":
            counts[name] = counts.get(name, -1) + 1
            name = f"{name}-{counts[name]}"
        children[int(proc.name)] = name
    return children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()
    photo = grainy_scan(args.side)
    limits = k8s_limits_mb()
    with tempfile.TemporaryDirectory() as results, local_cluster(results, replicas=2) as url:
        processes = cluster_processes()
        with PeakMemory(list(processes)) as memory:
            start = time.perf_counter()
            reply = requests.post(f"{url}/v1/restorations", data={"candidates": str(args.candidates)},
                                  files=[("photos", (f"scan{i}.jpg", photo, "image/jpeg")) for i in range(args.photos)],
                                  timeout=7200)
            seconds = time.perf_counter() - start
        peaks = memory.peaks
    states = [photo["status"] for photo in reply.json()["photos"]]
    print(f"{args.photos} photos of {args.side}x{args.side}, {args.candidates} candidates each, x1, one request, "
          f"2 replicas per service: {states.count('done')}/{len(states)} done in {seconds:.0f} s")
    print(f"{'process':14} {'peak RSS':>10} {'k8s limit':>10} {'peak/limit':>11}")
    over = 0
    for pid, name in sorted(processes.items(), key=lambda item: item[1]):
        limit = limits[name.split("-")[0]]
        over += peaks[pid] > limit
        print(f"{name:14} {peaks[pid]:7.0f} MB {limit:7.0f} MB {peaks[pid] / limit:10.2f}x")
    print(f"processes over their limit: {over} (goal: none, every photo done)")


if __name__ == "__main__":
    main()
