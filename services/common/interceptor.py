"""The one place where every RPC is counted, timed, admitted and error-mapped.

Inference RPCs take an inference slot: at most `max_concurrency` run at once
and at most `max_queue` wait, so a service never holds more than a bounded
number of full-size images; beyond that callers get RESOURCE_EXHAUSTED at once
and can try another replica. gRPC's own services (health, reflection) bypass
the slots so probes answer even when the service is saturated.

Every answer, health checks included, carries the service's capacity in its
initial metadata (`CAPACITY_KEY`: "<concurrency>,<queue>"), so a caller that
probes health learns how much each replica can take and dispatches no more.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.trace import SpanKind

from services.common import metrics
from services.common.cancellation import serving
from services.common.errors import InvalidInput, NotReady
from services.common.tracing import incoming_context, tracer

log = logging.getLogger(__name__)

#: Initial-metadata key of a service's capacity, "<max concurrency>,<max queue>".
CAPACITY_KEY = "revive-capacity"


class InferenceSlots:
    """A counting semaphore with a bounded waiting room."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency, self.queue = concurrency, queue
        self._semaphore = threading.Semaphore(concurrency)
        self._lock = threading.Lock()
        self._waiting = 0
        self._queue = queue

    @contextmanager
    def take(self, context: grpc.ServicerContext) -> Iterator[None]:
        arrived = time.perf_counter()
        if not self._semaphore.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self._queue:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "inference queue is full; retry later or elsewhere")
                self._waiting += 1
                metrics.INFERENCE_SLOTS_WAITING.set(self._waiting)
            try:
                while not self._semaphore.acquire(timeout=0.5):
                    if not context.is_active():
                        context.abort(grpc.StatusCode.CANCELLED, "caller went away while queued")
            finally:
                with self._lock:
                    self._waiting -= 1
                    metrics.INFERENCE_SLOTS_WAITING.set(self._waiting)
        metrics.QUEUE_WAIT_SECONDS.observe(time.perf_counter() - arrived)
        try:
            yield
        finally:
            self._semaphore.release()


class ServiceInterceptor(grpc.ServerInterceptor):
    def __init__(self, slots: InferenceSlots) -> None:
        self._slots = slots
        self._capacity = ((CAPACITY_KEY, f"{slots.concurrency},{slots.queue}"),)

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, _, method = details.method.lstrip("/").rpartition("/")
        limited = not service.startswith("grpc.")
        # Requests arrive as bytes and are parsed only once admitted: a refused 4096x4096 request never
        # costs a second copy, and a queued one holds only its bytes.
        deserialize = handler.request_deserializer or (lambda raw: raw)

        def parse(raw: bytes) -> Any:
            try:
                return deserialize(raw)
            except DecodeError as error:
                raise InvalidInput(f"the request is not a valid {method} message: {error}") from None
        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(raw: bytes, context: grpc.ServicerContext) -> Any:
                context.send_initial_metadata(self._capacity)
                with self._traced(service, method, context, limited), self._observe(service, method, context), \
                        self._admit(limited, context), serving(context):
                    return inner(parse(raw), context)

            return grpc.unary_unary_rpc_method_handler(unary, None, handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
                context.send_initial_metadata(self._capacity)
                with self._traced(service, method, context, limited), self._observe(service, method, context), \
                        self._admit(limited, context), serving(context):
                    yield from inner_stream(parse(raw), context)

            return grpc.unary_stream_rpc_method_handler(stream, None, handler.response_serializer)
        return handler  # Revive defines no client-streaming RPCs

    @contextmanager
    def _traced(self, service: str, method: str, context: grpc.ServicerContext, traced: bool) -> Iterator[None]:
        """A server span in the caller's trace (health checks and reflection are not traced)."""
        if not traced:
            yield
            return
        with tracer.start_as_current_span(f"{service}/{method}", context=incoming_context(context.invocation_metadata()),
                                          kind=SpanKind.SERVER, attributes={"rpc.system": "grpc",
                                                                            "rpc.service": service,
                                                                            "rpc.method": method}):
            yield

    @contextmanager
    def _admit(self, limited: bool, context: grpc.ServicerContext) -> Iterator[None]:
        if not limited:
            yield
            return
        with self._slots.take(context):
            yield

    @contextmanager
    def _observe(self, service: str, method: str, context: grpc.ServicerContext) -> Iterator[None]:
        metrics.RPCS_STARTED.labels(service, method).inc()
        in_flight = metrics.RPCS_IN_FLIGHT.labels(service, method)
        in_flight.inc()
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            yield
            if not context.is_active():  # finished, but the caller had already gone
                code = grpc.StatusCode.CANCELLED
        except InvalidInput as error:
            code = grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(error))
        except NotReady as error:
            code = grpc.StatusCode.UNAVAILABLE
            context.abort(code, str(error))
        except GeneratorExit:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            if not context.is_active():  # the caller cancelled or its deadline passed
                code = grpc.StatusCode.CANCELLED
                raise
            code = context.code() or grpc.StatusCode.UNKNOWN
            if code == grpc.StatusCode.UNKNOWN:
                log.exception("rpc failed", extra={"method": method})
                code = grpc.StatusCode.INTERNAL
                context.abort(code, "internal error; see the service log")
            raise
        finally:
            in_flight.dec()
            metrics.RPC_SECONDS.labels(service, method).observe(time.perf_counter() - start)
            metrics.RPCS_HANDLED.labels(service, method, code.name).inc()
            log.debug("rpc", extra={"method": method, "code": code.name, "seconds": round(time.perf_counter() - start, 4)})
