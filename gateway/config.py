"""Gateway settings from flags and REVIVE_* environment variables, each declared once below."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from gateway.auth import is_loopback
from services.common.config import MIB, Settings, flag


@dataclass(frozen=True)
class GatewayConfig(Settings):
    host: str = flag("127.0.0.1", "address to bind; 0.0.0.0 in containers")
    http_port: int = flag(8080, "HTTP port: API, web page, /metrics, /healthz, /readyz (0 = free port)", minimum=0)
    grpc_port: int = flag(50050, "gRPC port of the Restoration API (0 = free port)", minimum=0)
    #: gRPC targets; "dns:///name:port" or "ipv4:a:p,b:p" spread calls over replicas.
    detector: str = flag("127.0.0.1:50051", "detector gRPC target")
    generator: str = flag("127.0.0.1:50052", "generator gRPC target")
    upscaler: str = flag("127.0.0.1:50053", "upscaler gRPC target")
    results_dir: Path = flag(Path("var/results"), "where jobs, their uploads and result images are kept")
    default_candidates: int = flag(4, "candidates per photo when the request does not say", minimum=1)
    surplus_ratio: float = flag(
        0.5, "extra candidates generated per requested one when ranking can choose (faces, gender/age)", minimum=0)
    # The generator's IDENTITY_THRESHOLD (services/generator/scoring.py), where the reasons are.
    min_identity: float = flag(0.78, "candidates whose face similarity to the input is below this are dropped")
    rpc_timeout: float = flag(300.0, "deadline of each upstream RPC, seconds", minimum=1)
    photo_deadline: float = flag(
        1800.0, "seconds a photo may take, waiting for a replica with room included; while it lasts, a full or "
        "lost replica means wait and go elsewhere", minimum=1)
    max_photos_in_flight: int = flag(4, "photos processed at once, at most", minimum=1)
    memory_budget_mb: int = flag(
        0, "MiB of photo memory admitted at once, by pixels (gateway/budget.py); 0 = 60%% of the memory limit "
        "(the pod's cgroup), or 1024 without one", minimum=0)
    job_workers: int = flag(4, "jobs processed at once", minimum=1)
    max_queued_jobs: int = flag(32, "jobs waiting beyond those; more get HTTP 429", minimum=1)
    result_ttl: float = flag(86400.0, "seconds a finished job and its results are kept", minimum=0)
    results_budget_mb: int = flag(
        0, "MiB the results directory may hold; past it the oldest finished jobs are removed first (0 = no limit)",
        minimum=0)
    job_database: str = flag(
        "", "where job state lives: empty = SQLite in <results-dir>/jobs.sqlite3 (one gateway, or several on one "
        "host); postgresql://user:pass@host/db when replicas on several hosts share the work")
    job_lease: float = flag(30.0, "seconds (on the database's clock) an owner may go without renewing before another "
                            "gateway replica adopts its job",
                            minimum=1)
    max_upload_mb: int = flag(64, "largest single uploaded file, MiB", minimum=1)
    max_message_mb: int = flag(256, "largest gRPC message to or from upstreams, MiB", minimum=1)
    png_transit_mb: int = flag(
        16, "photos whose pixels exceed this many MiB travel to the services PNG-encoded, not RAW: each copy of "
        "a large request holds the interpreter and stalls the event loop (gateway/messages.py)", minimum=0)
    log_level: str = flag("info", "log level", choices=("debug", "info", "warning", "error"))
    otlp_endpoint: str = flag("", "OpenTelemetry collector (OTLP/gRPC) spans go to; empty: none leave the process")
    upstream_tls_ca: str = flag("", "PEM CA the services' certificates are checked against (empty: plaintext)")
    upstream_tls_cert: str = flag("", "PEM client certificate the gateway presents to the services (mTLS)")
    upstream_tls_key: str = flag("", "PEM private key of --upstream-tls-cert")
    upstream_tls_name: str = flag(
        "", "the name the services' certificates carry, when it is not the target's host (pods are dialled by IP)")
    api_keys_file: str = flag("", "JSON file of hashed API keys (gateway/auth.py); empty = open, loopback only")
    allow_anonymous: bool = flag(False, "serve without API keys on a non-loopback address too (true/false)")

    def __post_init__(self) -> None:
        if not self.api_keys_file and not self.allow_anonymous and not is_loopback(self.host):
            raise ValueError(f"refusing to serve {self.host} without API keys: give --api-keys-file "
                             "(python -m gateway.auth new ...), or --allow-anonymous true if that is meant")

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
    GatewayConfig.add_to(parser)
    return GatewayConfig.from_args(parser.parse_args(argv), parser)
