"""Prometheus metrics shared by the services, and the endpoint that serves them.

Names follow the go-grpc-prometheus conventions operators already have
dashboards for (grpc_server_handled_total & co.), plus Revive's model metrics.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, make_wsgi_app

# The *_created series double every exposition and no Revive dashboard reads them.
disable_created_metrics()

#: Buckets spanning a health check (ms) to a 16 MP restoration on CPU (tens of s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)

RPCS_STARTED = Counter(
    "grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method"]
)
RPCS_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from receiving an RPC to sending its last response.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
RPCS_IN_FLIGHT = Gauge(
    "grpc_server_in_flight_rpcs", "RPCs being handled now.", ["grpc_service", "grpc_method"]
)
INFERENCE_SLOTS_WAITING = Gauge(
    "revive_inference_queue_depth", "RPCs waiting for an inference slot."
)
QUEUE_WAIT_SECONDS = Histogram(
    "revive_inference_queue_wait_seconds", "Time an RPC waited for an inference slot (0 when one was free).",
    buckets=(0.001,) + LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "revive_model_inference_seconds",
    "Time spent in one model inference.",
    ["model", "provider"],
    buckets=LATENCY_BUCKETS,
)
GENERATOR_PHOTO_CACHE = Counter(
    "revive_generator_photo_cache_total",
    "Generate calls whose photo was already prepared on this replica (hit) or was prepared anew (miss).",
    ["result"],
)
GENERATOR_PHOTO_CACHE_BYTES = Gauge(
    "revive_generator_photo_cache_bytes",
    "Memory the generator's kept photos hold (their images and full-size analyses), by engine.",
    ["engine"],
)
MODEL_INFO = Gauge(
    "revive_model_loaded_info",
    "Models loaded by this process (value 1), with the provider that really runs them.",
    ["model", "provider"],
)


@contextmanager
def timed_inference(model: str, provider: str) -> Iterator[None]:
    """Observe one inference of `model` on `provider`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        INFERENCE_SECONDS.labels(model, provider).observe(time.perf_counter() - start)


def serve_metrics(host: str, port: int, serving: Callable[[], bool] = lambda: True) -> int | None:
    """Start the HTTP endpoint: /metrics, and /healthz and /readyz for probes that cannot speak gRPC over
    mutual TLS (the kubelet's gRPC probe presents no client certificate). /readyz is 200 only while
    `serving()`. Returns the port, None when disabled (-1)."""
    if port < 0:
        return None
    metrics_app = make_wsgi_app()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok = path == "/healthz" or serving()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not serving\n"]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server.server_port


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        """Probes and scrapes every few seconds are not news."""
BATCH_SIZE = Histogram(
    "revive_model_batch_size", "Inputs run in one inference call by the dynamic batcher, per model.", ["model"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
)
