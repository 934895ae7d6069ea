"""The gateway's gRPC API for internal callers: the HTTP pipeline, streamed."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import grpc
from revive.v1 import gateway_pb2, gateway_pb2_grpc

from gateway.auth import ANONYMOUS, ApiKey, Keys, bearer
from gateway.http_api import MAX_PHOTOS
from gateway.jobs import FINISHED, JobManager, QueueFull, StorageFull, enforce_photo_quota
from gateway.pipeline import PhotoUpload
from gateway.storage import ResultStore
from services.common.errors import InvalidInput
from services.common.options import validate_options


class RestorationServicer(gateway_pb2_grpc.RestorationServicer):
    def __init__(self, jobs: JobManager, store: ResultStore, keys: Keys | None = None) -> None:
        self._jobs = jobs
        self._store = store
        self._keys = keys

    async def _key(self, context: grpc.aio.ServicerContext) -> ApiKey:
        """The caller's key from its `authorization: Bearer <key>` metadata; UNAUTHENTICATED without one."""
        if self._keys is None:
            return ANONYMOUS
        metadata = dict(context.invocation_metadata() or ())
        key = self._keys.identify(bearer(str(metadata.get("authorization", ""))))
        if key is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "an API key is needed: authorization: Bearer <key>")
        return key

    async def Restore(self, request: gateway_pb2.RestoreRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[gateway_pb2.RestoreEvent]:
        key = await self._key(context)
        if not 1 <= len(request.photos) <= MAX_PHOTOS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"photos: send 1 to {MAX_PHOTOS}, got {len(request.photos)}")
        try:
            validate_options(request.options)
        except InvalidInput as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        photos = [
            PhotoUpload(index, photo.filename or f"photo-{index}", photo.content)
            for index, photo in enumerate(request.photos)
        ]
        try:
            enforce_photo_quota(self._keys, key, len(photos))
            job = await self._jobs.submit(photos, request.options, key.name, key.max_jobs)
        except (QueueFull, StorageFull) as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        listener = self._jobs.subscribe(job, images=True)
        ended = False
        try:
            while not (update := await listener.get()).finished:
                event = update.event
                if event.WhichOneof("event") == "candidate":
                    event = await asyncio.to_thread(self._with_image, event)
                yield event
            ended = True
        finally:
            self._jobs.unsubscribe(job, listener)
            if not ended:
                self._jobs.cancel_here(job.id)  # the caller went away
        if update.dropped:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the stream fell too far behind and was dropped; job {job.id} goes on: "
                                f"GET /v1/jobs/{job.id} on the HTTP API")
        if job.state not in FINISHED:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"this gateway stalled and another took job {job.id} over; it goes on there: "
                                f"GET /v1/jobs/{job.id} on the HTTP API")

    def _with_image(self, event: gateway_pb2.RestoreEvent) -> gateway_pb2.RestoreEvent:
        """The candidate event with its PNG attached, read back from the store (events inside the gateway
        carry only the URL, so no listener queue pins image bytes and the loop copies none)."""
        full = gateway_pb2.RestoreEvent()
        full.CopyFrom(event)
        full.candidate.image.data = self._store.read(event.candidate.url)
        return full
