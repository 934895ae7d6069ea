"""Assembling the gateway: upstream clients, pipeline, HTTP and gRPC servers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from revive.v1 import gateway_pb2, gateway_pb2_grpc

from gateway.auth import Keys
from gateway.config import GatewayConfig
from gateway.grpc_api import RestorationServicer
from gateway.grpc_observe import ObservingInterceptor
from gateway.http_api import HttpApi
from gateway.job_store import open_job_store
from gateway.jobs import JobManager
from gateway.loop_watch import watch_loop
from gateway.pipeline import Pipeline
from gateway.storage import ResultStore
from gateway.upstreams import Upstreams
from services.common.config import MIB
from services.common.server import message_size_options

log = logging.getLogger(__name__)


class Gateway:
    """Both front doors over one pipeline; start() and stop() run in the event loop."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.http_port = 0
        self.grpc_port = 0
        self._runner: web.AppRunner | None = None
        self._grpc: grpc.aio.Server | None = None
        self.upstreams: Upstreams | None = None
        self.jobs: JobManager | None = None
        self._watch: asyncio.Task | None = None

    async def start(self) -> "Gateway":
        config = self.config
        self._watch = asyncio.create_task(watch_loop(), name="loop-watch")
        self.upstreams = Upstreams(config)
        await self.upstreams.start()
        store = ResultStore(config.results_dir)
        pipeline = Pipeline(self.upstreams, store, config)
        job_store = await asyncio.to_thread(open_job_store, config.job_database, config.results_dir)
        self.jobs = JobManager(
            pipeline, config.results_dir, job_store, config.job_workers, config.max_queued_jobs, config.result_ttl,
            config.job_lease, config.results_budget_mb * MIB,
        )
        await self.jobs.start()

        keys = Keys.load(Path(config.api_keys_file)) if config.api_keys_file else None
        if keys is None:
            log.warning("no API keys: anyone who reaches this gateway may use it", extra={"host": config.host})
        self._runner = web.AppRunner(HttpApi(self.jobs, self.upstreams, store, config, keys).app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.http_port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]

        self._grpc = grpc.aio.server(options=message_size_options(config.max_message_bytes),
                                     interceptors=[ObservingInterceptor()])
        gateway_pb2_grpc.add_RestorationServicer_to_server(RestorationServicer(self.jobs, store, keys), self._grpc)
        # Health (SERVING while this gateway accepts jobs) and reflection, as every service has them.
        self._health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        name = gateway_pb2.DESCRIPTOR.services_by_name["Restoration"].full_name
        reflection.enable_server_reflection([name, health.SERVICE_NAME, reflection.SERVICE_NAME], self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{config.host}:{config.grpc_port}")
        await self._grpc.start()
        for service in ("", name):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("gateway listening", extra={
            "url": f"http://{config.host}:{self.http_port}/",
            "grpc_port": self.grpc_port,
            "service": gateway_pb2.DESCRIPTOR.services_by_name["Restoration"].full_name,
        })
        return self

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking requests, let the ones in flight finish within `grace`."""
        if self._grpc is not None:
            await self._health.enter_graceful_shutdown()
            await self._grpc.stop(grace)
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()
        if self.jobs is not None:
            await self.jobs.stop()
        if self.upstreams is not None:
            await self.upstreams.close()
        if self._watch is not None:
            self._watch.cancel()
