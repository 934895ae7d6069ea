"""Clients of the three services: dispatch to replicas with room, deadlines, retries elsewhere, readiness.

Calls go through one `ReplicaPool` per service (gateway/dispatch.py), which
waits in the gateway for a replica with room rather than overfilling one.
A call that a replica refuses (RESOURCE_EXHAUSTED) or loses (UNAVAILABLE) is
sent again to another, or to the same once it has room, until the photo's
deadline: a photo is not given up after a fixed number of tries.

Requests arrive serialised: a photo's bytes are encoded once however many
seeds are asked of it (see gateway/requests.py), so the RPCs here take bytes
and only decode the answers.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc
from revive.v1 import detector_pb2, generator_pb2, upscaler_pb2

from gateway import metrics
from gateway.config import GatewayConfig
from gateway.dispatch import NoReplica, Replica, ReplicaPool
from services.common.server import message_size_options
from services.common.tls import channel_credentials
from services.common.tracing import outgoing_metadata

log = logging.getLogger(__name__)

#: Codes that mean "this replica, not this request": try again elsewhere or later.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
T = TypeVar("T")


class UpstreamError(Exception):
    """An upstream call failed for good; names the service for the caller's message."""

    def __init__(self, service: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{service}: {code.name}: {details}")
        self.service, self.code, self.details = service, code, details


def channel_options(max_bytes: int) -> list[tuple[str, object]]:
    return message_size_options(max_bytes) + [
        ("grpc.enable_retries", 0),  # retried here, see the module docstring
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def target_host(target: str) -> str:
    """The host a "dns:///host:port" or "host:port" target names (what a server certificate carries)."""
    if target.startswith(("ipv4:", "ipv6:", "unix:")):
        return "localhost"
    return target.removeprefix("dns:///").removeprefix("dns:").rpartition(":")[0].strip("[]")


def _passthrough(message: bytes) -> bytes:
    """Requests arrive serialised (gateway/messages.py); answers are parsed off the event loop, since
    parsing copies their image bytes while holding the interpreter."""
    return message


class SendPacer:
    """Large requests leave one per turn of the event loop.

    gRPC copies a request into its own buffer inside the call's first step, holding the
    interpreter for the whole copy (~1 ms per MB here). Calls started together would
    each copy in the same loop turn, one after another: six 20 MB candidates' calls
    are a 130 ms stall for every other client. Holding a lock from starting a large call
    until the loop has turned (its copy done) spaces the copies out.
    """

    LARGE_BYTES = 4 * 2**20

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def start(self, size: int) -> AsyncIterator[None]:
        if size < self.LARGE_BYTES:
            yield
            return
        async with self._lock:
            yield
            await asyncio.sleep(0.001)  # a timer: the copy, already scheduled, runs in the turn before it fires


class Upstream:
    """One service: its replicas and its methods."""

    def __init__(self, service: str, target: str, config: GatewayConfig, pacer: SendPacer) -> None:
        self.service, self.target = service, target
        credentials = channel_credentials(config.upstream_tls_ca, config.upstream_tls_cert, config.upstream_tls_key)
        options = channel_options(config.max_message_bytes)
        if credentials is not None:
            # Replicas are dialled by address; their certificate names the service.
            options.append(("grpc.ssl_target_name_override", config.upstream_tls_name or target_host(target)))
        self.pool = ReplicaPool(service, target, options, credentials=credentials)
        self._timeout = config.rpc_timeout
        self._pacer = pacer

    async def call(self, attempt: Callable[[Replica, float], Awaitable[T]], deadline: float) -> T:
        """Run `attempt(replica, timeout)` on a replica with room, again elsewhere on RETRYABLE, until `deadline`."""
        loop = asyncio.get_running_loop()
        last: grpc.aio.AioRpcError | None = None
        while True:
            try:
                async with self.pool.replica(deadline) as replica:
                    try:
                        result = await attempt(replica, max(0.001, min(self._timeout, deadline - loop.time())))
                    except grpc.aio.AioRpcError as error:
                        metrics.UPSTREAM_ERRORS.labels(self.service, error.code().name).inc()
                        if error.code() not in RETRYABLE or loop.time() >= deadline:
                            raise UpstreamError(self.service, error.code(), error.details() or "") from None
                        last = error
                        (self.pool.full if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else self.pool.lost)(replica)
                        log.info("retrying elsewhere", extra={"service": self.service, "replica": replica.address,
                                                              "code": error.code().name})
                        continue
                    replica.succeeded()
                    return result
            except NoReplica as reason:
                # Unavailable when nothing serves (or the last try was lost); busy replicas past the deadline
                # are a deadline.
                unavailable = not self.pool.serving or (last is not None and last.code() == grpc.StatusCode.UNAVAILABLE)
                code = grpc.StatusCode.UNAVAILABLE if unavailable else grpc.StatusCode.DEADLINE_EXCEEDED
                details = (last.details() or str(reason)) if last is not None else str(reason)
                raise UpstreamError(self.service, code, details) from None

    def unary(self, method: str, response: Any) -> Callable[[bytes, float], Awaitable[Any]]:
        """A unary method taking serialised requests, dispatched by `call`."""

        async def run(request: bytes, deadline: float) -> Any:
            async def attempt(replica: Replica, timeout: float) -> Any:
                stub = replica.channel.unary_unary(method, _passthrough, _passthrough)
                async with self._pacer.start(len(request)):
                    call = stub(request, timeout=timeout, metadata=outgoing_metadata())
                return await asyncio.to_thread(response.FromString, await call)

            return await self.call(attempt, deadline)

        return run

    def stream(self, method: str, response: Any) -> Callable[[bytes, float], Awaitable[list[Any]]]:
        """A server-streaming method taking serialised requests; answers are collected."""

        async def run(request: bytes, deadline: float) -> list[Any]:
            async def attempt(replica: Replica, timeout: float) -> list[Any]:
                stub = replica.channel.unary_stream(method, _passthrough, _passthrough)
                async with self._pacer.start(len(request)):
                    call = stub(request, timeout=timeout, metadata=outgoing_metadata())
                answers = [answer async for answer in call]
                return await asyncio.to_thread(lambda: [response.FromString(answer) for answer in answers])

            return await self.call(attempt, deadline)

        return run


class Upstreams:
    """The detector, generator and upscaler, as the pipeline uses them."""

    def __init__(self, config: GatewayConfig) -> None:
        pacer = SendPacer()  # one for the process: every large copy holds the same interpreter
        self.detector = Upstream("detector", config.detector, config, pacer)
        self.generator = Upstream("generator", config.generator, config, pacer)
        self.upscaler = Upstream("upscaler", config.upscaler, config, pacer)
        self._detect = self.detector.unary("/revive.v1.DamageDetector/Detect", detector_pb2.DetectResponse)
        self._generate = self.generator.stream("/revive.v1.Generator/Generate", generator_pb2.Candidate)
        self._upscale = self.upscaler.unary("/revive.v1.Upscaler/Upscale", upscaler_pb2.UpscaleResponse)
        self._upscale_set = self.upscaler.stream("/revive.v1.Upscaler/UpscaleSet", upscaler_pb2.UpscaleResponse)

    @property
    def all(self) -> tuple[Upstream, ...]:
        return (self.detector, self.generator, self.upscaler)

    async def start(self) -> None:
        await asyncio.gather(*(upstream.pool.start() for upstream in self.all))

    async def detect(self, request: bytes, deadline: float) -> detector_pb2.DetectResponse:
        return await self._detect(request, deadline)

    async def generate_one(self, request: bytes, deadline: float) -> generator_pb2.Candidate:
        """One seed, one candidate: one call per candidate lets dispatch spread them over replicas."""
        candidates = await self._generate(request, deadline)
        if len(candidates) != 1:
            raise UpstreamError("generator", grpc.StatusCode.INTERNAL, f"{len(candidates)} candidates for one seed")
        return candidates[0]

    async def upscale(self, request: bytes, deadline: float) -> upscaler_pb2.UpscaleResponse:
        return await self._upscale(request, deadline)

    async def upscale_set(self, request: bytes, count: int, deadline: float) -> list[upscaler_pb2.UpscaleResponse]:
        """A photo's candidates in one call (UpscaleSet): one answer per candidate, in order."""
        answers = await self._upscale_set(request, deadline)
        if len(answers) != count:
            raise UpstreamError("upscaler", grpc.StatusCode.INTERNAL, f"{len(answers)} answers for {count} images")
        return answers

    def readiness(self) -> dict[str, dict[str, str]]:
        """Each service's replicas and their last probed state (no RPC: the probe loop keeps them current)."""
        return {upstream.service: upstream.pool.states() for upstream in self.all}

    async def close(self) -> None:
        await asyncio.gather(*(upstream.pool.close() for upstream in self.all))
