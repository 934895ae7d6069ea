"""Gateway settings from flags and REVIVE_* environment variables."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from services.common.config import MIB, add_flag


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    http_port: int
    grpc_port: int
    #: gRPC targets; "dns:///name:port" or "ipv4:a:p,b:p" spread calls over replicas.
    detector: str
    generator: str
    upscaler: str
    results_dir: Path
    default_candidates: int
    surplus_ratio: float
    min_identity: float
    rpc_timeout: float
    rpc_attempts: int
    max_photos_in_flight: int
    job_workers: int
    max_queued_jobs: int
    result_ttl: float
    job_lease: float
    max_upload_mb: int
    max_message_mb: int
    log_level: str

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MIB

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * MIB


def parse_config(argv: Sequence[str] | None = None) -> GatewayConfig:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Revive gateway. Every flag can also be set as REVIVE_<FLAG> (e.g. REVIVE_HTTP_PORT).",
    )

    def add(flag: str, default: str, help_text: str, kind: type = str) -> None:
        add_flag(parser, flag, default, help_text, kind)

    add("host", "127.0.0.1", "address to bind; 0.0.0.0 in containers")
    add("http-port", "8080", "HTTP port: API, web page, /metrics, /healthz, /readyz (0 = free port)", int)
    add("grpc-port", "50050", "gRPC port of the Restoration API (0 = free port)", int)
    add("detector", "127.0.0.1:50051", "detector gRPC target")
    add("generator", "127.0.0.1:50052", "generator gRPC target")
    add("upscaler", "127.0.0.1:50053", "upscaler gRPC target")
    add("results-dir", "var/results", "where jobs, their uploads and result images are kept")
    add("default-candidates", "4", "candidates per photo when the request does not say", int)
    add("surplus-ratio", "0.5", "extra candidates generated per requested one when ranking can choose (faces, gender/age)", float)
    # 0.92: restored candidates of one person scored 0.923-0.997, different people at most 0.929 (bench/generator_bench.py).
    add("min-identity", "0.92", "candidates whose face similarity to the input is below this are dropped", float)
    add("rpc-timeout", "300", "deadline of each upstream RPC, seconds", float)
    add("rpc-attempts", "3", "attempts per upstream RPC on UNAVAILABLE/RESOURCE_EXHAUSTED", int)
    add("max-photos-in-flight", "4", "photos processed at once (bounds decoded images in memory)", int)
    add("job-workers", "4", "jobs processed at once", int)
    add("max-queued-jobs", "32", "jobs waiting beyond those; more get HTTP 429", int)
    add("result-ttl", "86400", "seconds a finished job and its results are kept", float)
    add("job-lease", "30", "seconds without a heartbeat after which another gateway replica adopts a job", float)
    add("max-upload-mb", "64", "largest single uploaded file, MiB", int)
    add("max-message-mb", "256", "largest gRPC message to or from upstreams, MiB", int)
    add("log-level", "info", "debug, info, warning or error")
    args = parser.parse_args(argv)
    return GatewayConfig(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        detector=args.detector,
        generator=args.generator,
        upscaler=args.upscaler,
        results_dir=Path(args.results_dir),
        default_candidates=args.default_candidates,
        surplus_ratio=max(0.0, args.surplus_ratio),
        min_identity=args.min_identity,
        rpc_timeout=args.rpc_timeout,
        rpc_attempts=max(1, args.rpc_attempts),
        max_photos_in_flight=max(1, args.max_photos_in_flight),
        job_workers=max(1, args.job_workers),
        max_queued_jobs=max(1, args.max_queued_jobs),
        result_ttl=args.result_ttl,
        job_lease=args.job_lease,
        max_upload_mb=args.max_upload_mb,
        max_message_mb=args.max_message_mb,
        log_level=args.log_level,
    )
