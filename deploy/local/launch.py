"""The whole cluster on one machine: every service a local process on loopback.

`make run` starts one replica of each service; `make cluster` starts several
and points the gateway at all of them (an "ipv4:" target list, one address
per replica exactly as a headless Service gives in Kubernetes). It waits until
the gateway reports every upstream SERVING, prints the URL, and on Ctrl-C or
SIGTERM stops everything it started; if any process dies, it stops the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deploy.local.tls import make_local_tls
from services.common.config import env_default

ROOT = Path(__file__).resolve().parents[2]
#: (module, first gRPC port, first metrics port); replica i adds 10*i to both.
SERVICES = (
    ("detector", 50051, 9101),
    ("generator", 50052, 9102),
    ("upscaler", 50053, 9103),
)
REPLICA_PORT_STRIDE = 10


@dataclass
class Child:
    name: str
    process: subprocess.Popen


def start(name: str, args: list[str]) -> Child:
    return Child(name, subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT))


def wait_ready(url: str, children: list[Child], expected: int, timeout: float) -> None:
    """Until the gateway is ready and sees all `expected` service replicas SERVING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited with code {child.process.returncode} while starting")
        try:
            with urllib.request.urlopen(url + "readyz", timeout=2) as response:
                replicas = json.loads(response.read()).get("replicas", {})
                states = [state for service in replicas.values() for state in service.values()]
                if response.status == 200 and len(states) == expected and set(states) == {"SERVING"}:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the cluster was not ready after {timeout:.0f} s")


def stop_all(children: list[Child], grace: float = 15.0) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()


def interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM stops the cluster the way Ctrl-C does."""
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=int(env_default("replicas", "1")), help="replicas of each gRPC service")
    parser.add_argument("--http-port", type=int, default=int(env_default("http-port", "8080")))
    parser.add_argument("--grpc-port", type=int, default=int(env_default("grpc-port", "50050")))
    parser.add_argument("--port-offset", type=int, default=int(env_default("port-offset", "0")),
                        help="added to every service and metrics port, to run beside another cluster")
    parser.add_argument("--results-dir", default=env_default("results-dir", str(ROOT / "var" / "results")))
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for readiness")
    parser.add_argument("--tls", action="store_true",
                        help="mutual TLS between the gateway and the services, with a local CA made in var/tls")
    for name, _, _ in SERVICES:
        parser.add_argument(f"--{name}-engines", default=env_default(f"{name}-engines", ""),
                            help=f"the {name}'s --engines, default first (empty: the service's own default)")
    args, passthrough = parser.parse_known_args()

    children: list[Child] = []
    targets: dict[str, str] = {}
    tls = make_local_tls(ROOT / "var" / "tls") if args.tls else None
    # Services share the two cores: one inference thread each keeps them from thrashing.
    os.environ.setdefault("REVIVE_THREADS", "1")
    for name, port, metrics_port in SERVICES:
        addresses = []
        engines = getattr(args, f"{name}_engines")
        for replica in range(args.replicas):
            offset = args.port_offset + REPLICA_PORT_STRIDE * replica
            children.append(start(f"{name}-{replica}", [
                f"services.{name}", "--port", str(port + offset), "--metrics-port", str(metrics_port + offset),
                *(["--engines", engines] if engines else []), *(tls.service_flags() if tls else []),
            ]))
            addresses.append(f"127.0.0.1:{port + offset}")
        targets[name] = "ipv4:" + ",".join(addresses)
    children.append(start("gateway", [
        "gateway", "--http-port", str(args.http_port), "--grpc-port", str(args.grpc_port),
        "--results-dir", args.results_dir,
        *(f"--{name}={target}" for name, target in targets.items()),
        *(tls.gateway_flags() if tls else []),
        *passthrough,
    ]))
    url = f"http://127.0.0.1:{args.http_port}/"
    signal.signal(signal.SIGTERM, interrupt)
    try:
        wait_ready(url, children, args.replicas * len(SERVICES), args.ready_timeout)
        print(json.dumps({"msg": "Revive is ready", "url": url, "grpc": f"127.0.0.1:{args.grpc_port}",
                          "replicas": args.replicas, "upstreams": targets, "mtls": bool(tls)}), flush=True)
        print(f"\n  Revive is running at {url}  (Ctrl-C stops it)\n", flush=True)
        while True:
            for child in children:
                if child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr, flush=True)
        return 0
    except (RuntimeError, TimeoutError) as error:
        print(f"error: {error}; stopping everything", file=sys.stderr, flush=True)
        return 1
    finally:
        stop_all(children)


if __name__ == "__main__":
    sys.exit(main())
