"""Clients of the three services: channels, deadlines, retries and readiness.

Each upstream is one grpc.aio channel with round_robin load balancing, so a
target that resolves to many addresses (a Kubernetes headless Service, or an
"ipv4:a,b" list) spreads calls over every replica. gRPC's transparent retries
stop once a request exceeds the retry buffer (a few hundred KB, far below one
photo), so retries on UNAVAILABLE and RESOURCE_EXHAUSTED are done here: the
next attempt goes out on the channel's next subchannel, i.e. another replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import contextmanager
from typing import Awaitable, Callable, Iterator, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from revive.v1 import (
    detector_pb2,
    detector_pb2_grpc,
    generator_pb2,
    generator_pb2_grpc,
    upscaler_pb2,
    upscaler_pb2_grpc,
)

from gateway import metrics
from gateway.config import GatewayConfig
from services.common.server import message_size_options

log = logging.getLogger(__name__)

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
T = TypeVar("T")


class UpstreamError(Exception):
    """An upstream call failed for good; names the service for the caller's message."""

    def __init__(self, service: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{service}: {code.name}: {details}")
        self.service, self.code, self.details = service, code, details


def channel_options(max_bytes: int) -> list[tuple[str, object]]:
    return message_size_options(max_bytes) + [
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
        ("grpc.enable_retries", 0),  # retried here, see the module docstring
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


class Upstream:
    """One service behind one channel."""

    def __init__(self, service: str, target: str, config: GatewayConfig) -> None:
        self.service, self.target = service, target
        self.channel = grpc.aio.insecure_channel(target, options=channel_options(config.max_message_bytes))
        self._timeout = config.rpc_timeout
        self._attempts = config.rpc_attempts
        self._health = health_pb2_grpc.HealthStub(self.channel)

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        gauge = metrics.UPSTREAM_IN_FLIGHT.labels(self.service)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    async def call(self, attempt: Callable[[float], Awaitable[T]]) -> T:
        """Run `attempt(timeout)` with retries onto other replicas; raise UpstreamError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        for number in range(1, self._attempts + 1):
            try:
                with self._in_flight():
                    return await attempt(max(0.001, deadline - loop.time()))
            except grpc.aio.AioRpcError as error:
                metrics.UPSTREAM_ERRORS.labels(self.service, error.code().name).inc()
                if error.code() not in RETRYABLE or number == self._attempts or loop.time() >= deadline:
                    raise UpstreamError(self.service, error.code(), error.details() or "") from None
                log.info("retrying", extra={"service": self.service, "code": error.code().name, "attempt": number})
                await asyncio.sleep(min(0.1 * 2**number, max(0.0, deadline - loop.time())))
        raise AssertionError("unreachable")

    async def serving(self, timeout: float = 2.0) -> bool:
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self.channel.close()


class Upstreams:
    """The detector, generator and upscaler, as the pipeline uses them."""

    def __init__(self, config: GatewayConfig) -> None:
        self.detector = Upstream("detector", config.detector, config)
        self.generator = Upstream("generator", config.generator, config)
        self.upscaler = Upstream("upscaler", config.upscaler, config)
        self._detect = detector_pb2_grpc.DamageDetectorStub(self.detector.channel).Detect
        self._generate = generator_pb2_grpc.GeneratorStub(self.generator.channel).Generate
        self._upscale = upscaler_pb2_grpc.UpscalerStub(self.upscaler.channel).Upscale

    @property
    def all(self) -> tuple[Upstream, ...]:
        return (self.detector, self.generator, self.upscaler)

    async def detect(self, request: detector_pb2.DetectRequest) -> detector_pb2.DetectResponse:
        return await self.detector.call(lambda timeout: self._detect(request, timeout=timeout))

    async def generate_one(self, request: generator_pb2.GenerateRequest) -> generator_pb2.Candidate:
        """One seed, one candidate: one call per candidate lets round_robin spread them."""

        async def attempt(timeout: float) -> list[generator_pb2.Candidate]:
            return [candidate async for candidate in self._generate(request, timeout=timeout)]

        candidates = await self.generator.call(attempt)
        if len(candidates) != 1:
            raise UpstreamError("generator", grpc.StatusCode.INTERNAL, f"{len(candidates)} candidates for one seed")
        return candidates[0]

    async def upscale(self, request: upscaler_pb2.UpscaleRequest) -> upscaler_pb2.UpscaleResponse:
        return await self.upscaler.call(lambda timeout: self._upscale(request, timeout=timeout))

    async def readiness(self) -> dict[str, bool]:
        states = await asyncio.gather(*(upstream.serving() for upstream in self.all))
        return {upstream.service: state for upstream, state in zip(self.all, states)}

    async def close(self) -> None:
        await asyncio.gather(*(upstream.close() for upstream in self.all))
