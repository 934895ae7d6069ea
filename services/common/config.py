"""Service configuration from flags, with every flag also settable by environment.

`--metrics-port` can be given as `REVIVE_METRICS_PORT`, and so on: flags win
over the environment, the environment over the defaults. Kubernetes sets the
environment from a ConfigMap; people at a shell pass flags.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ENV_PREFIX = "REVIVE_"

MIB = 1024 * 1024

#: Default execution providers, most preferred first; unavailable ones are skipped.
DEFAULT_PROVIDERS = ("tensorrt", "cuda", "cpu")


@dataclass(frozen=True)
class ServiceConfig:
    """Settings every gRPC service shares."""

    host: str
    port: int
    metrics_port: int
    models_dir: Path
    engines: tuple[str, ...]
    threads: int
    providers: tuple[str, ...]
    trt_cache_dir: Path
    max_concurrency: int
    max_queue: int
    max_message_mb: int
    drain_seconds: float
    max_connection_age: float
    log_level: str

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * MIB

    @property
    def default_engine(self) -> str:
        return self.engines[0]


def env_default(name: str, default: str) -> str:
    """The environment's value for flag `--name`, or `default`."""
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def add_flag(parser: argparse.ArgumentParser, flag: str, default: str, help_text: str, kind: type = str) -> None:
    """Add `--flag`, defaulting to $REVIVE_FLAG or else `default`."""
    parser.add_argument(f"--{flag}", type=kind, default=kind(env_default(flag, default)), help=help_text)


def csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser(service: str, port: int, metrics_port: int, engines: Sequence[str]) -> argparse.ArgumentParser:
    """The common flags; `engines` lists what the service can load, default first."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{service}",
        description=f"Revive {service} gRPC service. Every flag can also be set as "
        f"{ENV_PREFIX}<FLAG> in the environment (e.g. {ENV_PREFIX}PORT).",
    )

    def add(flag: str, default: str, help_text: str, kind: type = str) -> None:
        add_flag(parser, flag, default, help_text, kind)

    add("host", "127.0.0.1", "address to bind; 0.0.0.0 in containers")
    add("port", str(port), "gRPC port (0 picks a free one)", int)
    add("metrics-port", str(metrics_port), "Prometheus /metrics HTTP port (0 picks a free one, -1 disables)", int)
    add("models-dir", str(Path(__file__).resolve().parents[2] / "models"), "directory of model artifacts")
    add("engines", ",".join(engines), f"engines to load, default first; known: {', '.join(engines)}")
    add("threads", str(os.cpu_count() or 1), "intra-op threads for inference", int)
    add("providers", ",".join(DEFAULT_PROVIDERS), "execution providers in order of preference")
    add("trt-cache-dir", "/tmp/revive-trt-cache", "TensorRT engine and timing cache directory")
    add("max-concurrency", "2", "inferences running at once (bounds full-size images in memory)", int)
    add("max-queue", "8", "RPCs waiting for a slot before RESOURCE_EXHAUSTED", int)
    add("max-message-mb", "256", "largest gRPC message accepted or sent, MiB", int)
    add("drain-seconds", "20", "grace period for in-flight RPCs on SIGTERM", float)
    add("max-connection-age", "60", "seconds before a client connection is recycled (lets clients find new replicas)", float)
    add("log-level", "info", "debug, info, warning or error")
    return parser


def parse_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> ServiceConfig:
    args = parser.parse_args(argv)
    engines = csv(args.engines)
    if not engines:
        parser.error("--engines must name at least one engine")
    if args.max_concurrency < 1 or args.max_queue < 0:
        parser.error("--max-concurrency must be >= 1 and --max-queue >= 0")
    return ServiceConfig(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        models_dir=Path(args.models_dir),
        engines=engines,
        threads=args.threads,
        providers=csv(args.providers),
        trt_cache_dir=Path(args.trt_cache_dir),
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        max_message_mb=args.max_message_mb,
        drain_seconds=args.drain_seconds,
        max_connection_age=args.max_connection_age,
        log_level=args.log_level,
    )
