"""Dispatching upstream calls to replicas no faster than each can take them.

A service replica admits `max_concurrency` inferences and queues `max_queue`
more; past that it answers RESOURCE_EXHAUSTED. Sending every candidate of
every photo at once and retrying twice (what round_robin over one channel
does) loses photos as soon as a request is larger than a replica's queue. So
the gateway keeps the work in its own queue instead, as Envoy's per-host
limits or a Triton client's in-flight window do:

- the target is resolved to its replicas (a Kubernetes headless Service gives
  one address per pod; "ipv4:a:p,b:p" lists them), re-resolved every probe,
  so replicas an autoscaler adds or removes are found;
- each replica is probed with gRPC health; the answer carries its capacity
  (`services.common.interceptor.CAPACITY_KEY`), so the gateway dispatches at
  most its concurrency plus as many queued calls again, enough to keep it
  busy without parking full-size photos in its queue;
- a call waits in the gateway for the least-loaded replica with room; a
  replica that answers RESOURCE_EXHAUSTED (another gateway filled it) rests
  for a moment, one that is UNAVAILABLE is out until a probe finds it
  SERVING again, and the call goes elsewhere, until the photo's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import metrics
from services.common.interceptor import CAPACITY_KEY

log = logging.getLogger(__name__)

#: Seconds between probes of every replica (health, capacity, new addresses).
PROBE_INTERVAL = 2.0
#: Capacity assumed for a replica that has not said (an older service): one call at a time.
UNKNOWN_CAPACITY = (1, 0)
#: How long a replica that answered RESOURCE_EXHAUSTED is left alone, seconds (doubling while it repeats).
REST_SECONDS = (0.25, 4.0)


class NoReplica(Exception):
    """No replica could take the call before the deadline."""


def resolve(target: str) -> list[str]:
    """The addresses behind a gRPC target (blocking DNS: call it in a thread).

    "ipv4:a:p,b:p" and "ipv6:[a]:p,..." list them; "unix:" paths are one
    replica; "dns:///host:port" and "host:port" are looked up, keeping one
    address family so that "localhost" is not counted twice (127.0.0.1, ::1).
    """
    if target.startswith(("ipv4:", "ipv6:")):
        return [address.strip() for address in target.split(":", 1)[1].split(",") if address.strip()]
    if target.startswith("unix:"):
        return [target]
    host, _, port = target.removeprefix("dns:///").removeprefix("dns:").rpartition(":")
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    families = {family for family, *_ in infos}
    family = socket.AF_INET if socket.AF_INET in families else socket.AF_INET6
    found: list[str] = []
    for info_family, _, _, _, sockaddr in infos:
        address = f"{sockaddr[0]}:{port}" if info_family == socket.AF_INET else f"[{sockaddr[0]}]:{port}"
        if info_family == family and address not in found:
            found.append(address)
    return found


class Replica:
    """One address of a service: its channel, what it can take, and what it has now."""

    def __init__(self, address: str, options: Sequence[tuple[str, object]],
                 credentials: grpc.ChannelCredentials | None = None) -> None:
        self.address = address
        self.channel = (grpc.aio.secure_channel(address, credentials, options=list(options)) if credentials
                        else grpc.aio.insecure_channel(address, options=list(options)))
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self.concurrency, self.queue = UNKNOWN_CAPACITY
        self.serving = False
        self.in_flight = 0
        self.resting_until = 0.0
        self._rests = 0
        self.removed = False

    @property
    def limit(self) -> int:
        """Calls dispatched at once: all it runs, and as many again waiting so it never idles."""
        return self.concurrency + min(self.queue, self.concurrency)

    def has_room(self, now: float) -> bool:
        return self.serving and not self.removed and now >= self.resting_until and self.in_flight < self.limit

    async def probe(self, timeout: float = 2.0) -> None:
        """Health and capacity, from one health check."""
        call = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        try:
            reply = await call
            metadata = dict(await call.initial_metadata() or ())
        except grpc.aio.AioRpcError:
            self.serving = False
            return
        self.serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        advertised = metadata.get(CAPACITY_KEY)
        if isinstance(advertised, str) and advertised.count(",") == 1:
            concurrency, queue = (int(part) for part in advertised.split(","))
            self.concurrency, self.queue = max(1, concurrency), max(0, queue)

    def rest(self, now: float) -> None:
        """Leave the replica alone for a while, longer each time it is found full in a row."""
        low, high = REST_SECONDS
        self._rests += 1
        self.resting_until = now + min(high, low * 2 ** (self._rests - 1)) * random.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        self._rests = 0


class ReplicaPool:
    """The replicas of one service, kept current by a supervised probe loop."""

    def __init__(self, service: str, target: str, options: Sequence[tuple[str, object]],
                 probe_interval: float = PROBE_INTERVAL, credentials: grpc.ChannelCredentials | None = None) -> None:
        self.service, self.target = service, target
        self._options = options
        self._credentials = credentials
        self._interval = probe_interval
        self.replicas: dict[str, Replica] = {}
        #: Set (and replaced) whenever room may have appeared: a call ended, a probe answered.
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._reprobes: set[asyncio.Task] = set()

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._probe_forever(), name=f"probe-{self.service}")

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:  # keep probing: a transient DNS or channel error must not stop dispatch
                log.exception("probing replicas failed", extra={"service": self.service})
                metrics.BACKGROUND_FAILURES.labels(f"probe-{self.service}").inc()

    async def refresh(self) -> None:
        """Re-resolve the target, then probe every replica; wakes calls waiting for room."""
        try:
            addresses = await asyncio.to_thread(resolve, self.target)
        except OSError as error:
            log.warning("cannot resolve", extra={"service": self.service, "target": self.target, "error": str(error)})
            addresses = list(self.replicas)
        for address in addresses:
            if address not in self.replicas:
                self.replicas[address] = Replica(address, self._options, self._credentials)
        for address in [address for address in self.replicas if address not in addresses]:
            replica = self.replicas.pop(address)
            replica.removed = True
            if replica.in_flight == 0:
                await replica.channel.close()
        await asyncio.gather(*(replica.probe() for replica in self.replicas.values()))
        metrics.UPSTREAM_REPLICAS.labels(self.service).set(sum(r.serving for r in self.replicas.values()))
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def serving(self) -> bool:
        return any(replica.serving for replica in self.replicas.values())

    def states(self) -> dict[str, str]:
        return {address: "SERVING" if replica.serving else "NOT_SERVING" for address, replica in self.replicas.items()}

    @asynccontextmanager
    async def replica(self, deadline: float) -> AsyncIterator[Replica]:
        """The least-loaded replica with room, waited for (in the gateway) until `deadline` (loop time)."""
        loop = asyncio.get_running_loop()
        waiting = metrics.UPSTREAM_WAITING.labels(self.service)
        waiting.inc()
        arrived = loop.time()
        try:
            # Choosing and taking a slot happen with no await between them: one event loop, no lock needed.
            while True:
                now = loop.time()
                free = [replica for replica in self.replicas.values() if replica.has_room(now)]
                if free:
                    chosen = min(free, key=lambda r: (r.in_flight / r.limit, r.in_flight))
                    break
                if now >= deadline:
                    serving = sum(r.serving for r in self.replicas.values())
                    raise NoReplica(f"no {self.service} replica could take the call in time "
                                    f"({len(self.replicas)} known, {serving} serving)")
                resting = [r.resting_until for r in self.replicas.values() if r.serving and r.resting_until > now]
                wake = min([deadline, now + self._interval, *resting]) - now
                try:
                    await asyncio.wait_for(self._changed.wait(), max(wake, 0.01))
                except TimeoutError:
                    pass
        finally:
            waiting.dec()
        metrics.UPSTREAM_WAIT_SECONDS.labels(self.service).observe(loop.time() - arrived)
        chosen.in_flight += 1
        metrics.UPSTREAM_IN_FLIGHT.labels(self.service).inc()
        try:
            yield chosen
        finally:
            chosen.in_flight -= 1
            metrics.UPSTREAM_IN_FLIGHT.labels(self.service).dec()
            self._notify()
            if chosen.removed and chosen.in_flight == 0:
                await chosen.channel.close()

    def full(self, replica: Replica) -> None:
        """The replica answered RESOURCE_EXHAUSTED: rest it, so calls go elsewhere or wait."""
        replica.rest(asyncio.get_running_loop().time())

    def lost(self, replica: Replica) -> None:
        """The replica answered UNAVAILABLE: out until a probe finds it serving again."""
        replica.serving = False
        task = asyncio.get_running_loop().create_task(self._reprobe(replica))
        self._reprobes.add(task)
        task.add_done_callback(self._reprobes.discard)

    async def _reprobe(self, replica: Replica) -> None:
        await asyncio.sleep(min(1.0, self._interval))
        await replica.probe()
        self._notify()

    async def close(self) -> None:
        for task in [self._task, *self._reprobes]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(replica.channel.close() for replica in self.replicas.values()))
