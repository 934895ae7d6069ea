"""The gateway's gRPC API for internal callers: the HTTP pipeline, streamed."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import grpc

from gateway.http_api import MAX_PHOTOS
from gateway.pipeline import PhotoUpload, Pipeline
from gateway.storage import new_request_id
from revive.v1 import gateway_pb2, gateway_pb2_grpc
from services.common.errors import InvalidInput
from services.common.options import validate_options


class RestorationServicer(gateway_pb2_grpc.RestorationServicer):
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def Restore(self, request: gateway_pb2.RestoreRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[gateway_pb2.RestoreEvent]:
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
        events: asyncio.Queue[gateway_pb2.RestoreEvent | None] = asyncio.Queue()
        work = asyncio.create_task(self._pipeline.run(new_request_id(), photos, request.options, events.put_nowait))
        work.add_done_callback(lambda _task: events.put_nowait(None))
        try:
            while (event := await events.get()) is not None:
                yield event
            await work
        finally:
            work.cancel()  # the caller went away: cancel the in-flight upstream RPCs too
