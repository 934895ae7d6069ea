"""The server bootstrap every Revive service runs on.

A service describes itself with a `ServiceDefinition` (its gRPC service, its
engines and how to register its servicer); this module does the rest the same
way for all of them: flags and environment, structured logs, health checking
that turns SERVING only once the engines are loaded and warmed, reflection,
Prometheus metrics on their own port, bounded concurrency, and a graceful
drain on SIGTERM so Kubernetes can roll pods without failing requests.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.config import NoSettings, ServiceConfig, Settings, build_parser, parse_config
from services.common.engines import EngineFactory, EngineSet
from services.common.interceptor import InferenceSlots, ServiceInterceptor
from services.common.logs import setup_logging
from services.common.metrics import serve_metrics
from services.common.tls import server_credentials
from services.common.tracing import setup_tracing

log = logging.getLogger(__name__)

#: Threads kept free for health checks and reflection beyond inference and queue.
SPARE_THREADS = 4
#: How long an RPC caught by a connection-age GOAWAY may still run: past any caller's deadline.
CONNECTION_AGE_GRACE_MS = 10 * 60 * 1000


def message_size_options(max_bytes: int) -> list[tuple[str, int]]:
    """Channel/server options lifting gRPC's 4 MB default so a 4096x4096 photo fits."""
    return [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
    ]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    #: Fully qualified gRPC service name, e.g. "revive.v1.DamageDetector".
    grpc_service: str
    default_port: int
    default_metrics_port: int
    #: Engine name -> factory; the first is the default.
    engines: Mapping[str, EngineFactory]
    #: Registers the servicer on the server; it looks engines up in the set.
    add_servicer: Callable[[grpc.Server, EngineSet], None]
    #: The engines' own knobs, shown by --help beside the common flags.
    settings: type[Settings] = NoSettings

    def parse(self, argv: Sequence[str] | None = None) -> ServiceConfig:
        defaults = {"port": self.default_port, "metrics_port": self.default_metrics_port,
                    "engines": tuple(self.engines)}
        return parse_config(build_parser(self.name, defaults, self.settings), self.settings, argv)


class ServiceServer:
    """One running service: gRPC server, health, metrics and the engine loader."""

    def __init__(self, definition: ServiceDefinition, config: ServiceConfig) -> None:
        self.definition = definition
        self.config = config
        self.engines: EngineSet = EngineSet()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.port = 0
        self.metrics_port: int | None = None
        self.load_error: BaseException | None = None
        self._loaded = threading.Event()
        self._server: grpc.Server | None = None
        self._draining = False

    def start(self) -> "ServiceServer":
        """Bind and serve at once (NOT_SERVING), then load engines in the background."""
        config = self.config
        slots = InferenceSlots(config.max_concurrency, config.max_queue)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=config.max_concurrency + config.max_queue + SPARE_THREADS,
                thread_name_prefix=self.definition.name,
            ),
            interceptors=[ServiceInterceptor(slots)],
            options=message_size_options(config.max_message_bytes) + [
                # Clients re-resolve DNS only when a connection closes: ageing connections out
                # lets a gateway discover replicas that an autoscaler added since it connected.
                ("grpc.max_connection_age_ms", int(config.max_connection_age * 1000)),
                ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
            ],
        )
        self.definition.add_servicer(self._server, self.engines)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            [self.definition.grpc_service, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        credentials = server_credentials(config.tls_cert, config.tls_key, config.tls_ca)
        address = f"{config.host}:{config.port}"
        self.port = (self._server.add_secure_port(address, credentials) if credentials
                     else self._server.add_insecure_port(address))
        if self.port == 0:
            raise OSError(f"cannot bind {config.host}:{config.port}")
        self._server.start()
        self.metrics_port = serve_metrics(config.host, config.metrics_port, self._loaded_ok)
        log.info("listening", extra={"service": self.definition.name, "port": self.port, "metrics_port": self.metrics_port})
        threading.Thread(target=self._load, name="engine-loader", daemon=True).start()
        return self

    def _load(self) -> None:
        try:
            self.engines.load(self.definition.engines, self.config)
        except BaseException as error:  # reported through load_error / exit code
            log.exception("engine loading failed", extra={"service": self.definition.name})
            self.load_error = error
        else:
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
            log.info("serving", extra={
                "service": self.definition.name,
                "engines": {engine.name: engine.provider for engine in self.engines},
            })
        finally:
            self._loaded.set()

    def _loaded_ok(self) -> bool:
        """Engines loaded and warmed, and not draining: what gRPC health says SERVING for."""
        return self._loaded.is_set() and self.load_error is None and not self._draining

    def _set_health(self, status: int) -> None:
        for name in ("", self.definition.grpc_service):
            self.health.set(name, status)

    def wait_until_serving(self, timeout: float | None = None) -> None:
        """Block until the engines are loaded; raise if loading failed or timed out."""
        if not self._loaded.wait(timeout):
            raise TimeoutError(f"{self.definition.name} did not load its engines in {timeout}s")
        if self.load_error is not None:
            raise RuntimeError(f"{self.definition.name} failed to load engines") from self.load_error

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, then let in-flight RPCs finish within the grace period."""
        if self._server is None:
            return
        self._draining = True
        self.health.enter_graceful_shutdown()
        self._server.stop(self.config.drain_seconds if grace is None else grace).wait()
        self._server = None

    def wait_for_termination(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()


def main(definition: ServiceDefinition, argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m services.<name>`."""
    config = definition.parse(argv)
    setup_logging(config.log_level)
    setup_tracing(definition.name, config.otlp_endpoint)
    server = ServiceServer(definition, config).start()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("draining", extra={"signal": signal.Signals(signum).name, "grace_s": config.drain_seconds})
            threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.wait_until_serving()
    except RuntimeError:
        server.stop(0)
        sys.exit(1)
    server.wait_for_termination()
    log.info("stopped", extra={"service": definition.name})
