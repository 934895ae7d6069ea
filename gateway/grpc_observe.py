"""The gateway's own gRPC API counted like every service's: grpc_server_* by method and code."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import grpc

from services.common import metrics


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        service, _, method = details.method.lstrip("/").rpartition("/")
        if handler is None or service.startswith("grpc.") or not handler.unary_stream:
            return handler
        inner = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metrics.RPCS_STARTED.labels(service, method).inc()
            in_flight = metrics.RPCS_IN_FLIGHT.labels(service, method)
            in_flight.inc()
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                async for answer in inner(request, context):
                    yield answer
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                in_flight.dec()
                if isinstance(code, int):
                    code = grpc.StatusCode.UNKNOWN
                metrics.RPC_SECONDS.labels(service, method).observe(time.perf_counter() - start)
                metrics.RPCS_HANDLED.labels(service, method, code.name).inc()

        return grpc.unary_stream_rpc_method_handler(stream, handler.request_deserializer, handler.response_serializer)
