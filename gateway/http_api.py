"""The HTTP API v1, the web page and the operational endpoints.

aiohttp rather than an ASGI stack: it shares the event loop with grpc.aio and
streams multipart uploads without buffering them twice (measured: half the
time and a third of the peak memory of FastAPI for ten 50 MB uploads).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import aiohttp.http_exceptions
from aiohttp import BodyPartReader, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import metrics
from gateway.auth import ANONYMOUS, COOKIE, ApiKey, Keys, bearer
from gateway.config import GatewayConfig
from gateway.jobs import FINISHED, Job, JobManager, QueueFull, StorageFull, enforce_photo_quota
from gateway.options import options_from_form
from gateway.pipeline import PhotoUpload
from gateway.report import request_status
from gateway.storage import ResultStore
from gateway.upstreams import Upstreams
from services.common.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_PHOTOS = 10
#: Longest value accepted in a non-file form field.
MAX_FIELD_BYTES = 1024
#: Form fields besides the photos: the options, with room to spare; more is a malformed request.
MAX_FIELDS = 32
#: Uploads must keep moving (UploadPace).
UPLOAD_IDLE_SECONDS = 20.0
UPLOAD_GRACE_SECONDS = 10.0
UPLOAD_MIN_RATE = 16 * 1024
#: Seconds between SSE keep-alive comments, so proxies keep the stream open.
SSE_KEEPALIVE = 15.0
#: Seconds a server-sent event may wait for the client to take it before the stream is dropped.
SSE_WRITE_TIMEOUT = 30.0
STATIC_DIR = Path(__file__).parent / "static"
OPENAPI_PATH = Path(__file__).parent / "openapi.json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message, **extra}}, status=status)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route; give HTTP errors a JSON body."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    start = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                status = error.status
                raise
            response = error_response(error.status, error.text or error.reason)
        status = response.status
        return response
    finally:
        metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - start)
        metrics.HTTP_REQUESTS.labels(route, request.method, str(status)).inc()


class UploadPace:
    """Refuses uploads that trickle: a pause longer than UPLOAD_IDLE_SECONDS, or, after the first
    UPLOAD_GRACE_SECONDS, an average below UPLOAD_MIN_RATE bytes/s. Slow clients cannot hold
    connections (and half-read uploads) open for minutes."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.received = 0

    async def chunk(self, part: BodyPartReader) -> bytes:
        try:
            data = await asyncio.wait_for(part.read_chunk(1 << 20), UPLOAD_IDLE_SECONDS)
        except asyncio.TimeoutError:
            raise web.HTTPRequestTimeout(text=f"the upload paused for over {UPLOAD_IDLE_SECONDS:.0f} s") from None
        self.received += len(data)
        elapsed = time.monotonic() - self.start
        if elapsed > UPLOAD_GRACE_SECONDS and self.received / elapsed < UPLOAD_MIN_RATE:
            raise web.HTTPRequestTimeout(text=f"the upload is too slow ({self.received / elapsed / 1024:.1f} KiB/s; "
                                              f"at least {UPLOAD_MIN_RATE // 1024} KiB/s)")
        return data


async def read_part(part: BodyPartReader, limit: int, what: str, pace: UploadPace) -> bytes:
    """Read one multipart part, refusing it as soon as it passes `limit` bytes."""
    chunks, size = [], 0
    while chunk := await pace.chunk(part):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size, text=f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: web.Request, config: GatewayConfig) -> tuple[list[PhotoUpload], dict[str, str]]:
    """Photos (file parts) and option fields (the other parts) of a multipart request."""
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPUnsupportedMediaType(text="send the photos as multipart/form-data")
    try:
        return await _read_parts(request, config)
    except web.HTTPException:
        raise
    except (ValueError, AssertionError, aiohttp.ClientPayloadError, aiohttp.http_exceptions.HttpProcessingError) as error:
        # A broken body (wrong boundary, cut short): the client's mistake, said as such.
        raise web.HTTPBadRequest(text=f"malformed multipart body: {error or type(error).__name__}") from None


async def _read_parts(request: web.Request, config: GatewayConfig) -> tuple[list[PhotoUpload], dict[str, str]]:
    photos: list[PhotoUpload] = []
    fields: dict[str, str] = {}
    pace = UploadPace()
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise web.HTTPBadRequest(text="nested multipart bodies are not supported")
        if part.filename is not None:
            if len(photos) == MAX_PHOTOS:
                raise web.HTTPBadRequest(text=f"too many photos: at most {MAX_PHOTOS} per request")
            data = await read_part(part, config.max_upload_bytes, f"photo {part.filename!r}", pace)
            metrics.BYTES_IN.inc(len(data))
            photos.append(PhotoUpload(len(photos), part.filename or f"photo-{len(photos)}", data))
        elif part.name:
            if len(fields) == MAX_FIELDS:
                raise web.HTTPBadRequest(text=f"too many form fields: the options are at most {MAX_FIELDS}")
            fields[part.name] = (await read_part(part, MAX_FIELD_BYTES, f"field {part.name[:40]!r}", pace)).decode(
                "utf-8", "replace")
    if not photos:
        raise web.HTTPBadRequest(text="no photos: attach 1 to 10 image files as form parts with a filename")
    return photos, fields


def queue_full(error: QueueFull) -> web.Response:
    response = error_response(429, str(error))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def storage_full(error: StorageFull) -> web.Response:
    """507: nothing was accepted, and retrying soon will not help until an operator frees the volume."""
    return error_response(507, str(error))


def job_links(job: Job) -> dict[str, str]:
    return {"self": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events"}


#: Where the caller's key is kept on each request.
CALLER = web.RequestKey("revive_caller", object)
#: Reachable without a key: probes, Prometheus, the page itself, the API's description, and the login.
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics", "/", "/v1/openapi.json", "/v1/session"}


class HttpApi:
    def __init__(self, jobs: JobManager, upstreams: Upstreams, store: ResultStore, config: GatewayConfig,
                 keys: Keys | None) -> None:
        self._jobs, self._upstreams, self._store, self._config = jobs, upstreams, store, config
        self._keys = keys

    def app(self) -> web.Application:
        # Room for ten photos at the per-file limit plus the option fields.
        app = web.Application(middlewares=[observe, self.authenticate],
                              client_max_size=(MAX_PHOTOS + 1) * self._config.max_upload_bytes)
        app.add_routes([
            web.post("/v1/session", self.create_session),
            web.delete("/v1/session", self.delete_session),
            web.post("/v1/restorations", self.create_restoration),
            web.post("/v1/jobs", self.create_job),
            web.get("/v1/jobs/{job_id}", self.get_job),
            web.get("/v1/jobs/{job_id}/events", self.job_events),
            web.delete("/v1/jobs/{job_id}", self.delete_job),
            web.get("/v1/results/{request_id}/{photo}/{name}", self.get_result),
            web.get("/v1/openapi.json", self.openapi),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
            web.get("/", self.index),
            web.static("/static", STATIC_DIR),
        ])
        return app

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The caller's key, from the Authorization header or the page's cookie; 401 without one."""
        if self._keys is None:
            request[CALLER] = ANONYMOUS
        elif request.path in OPEN_ROUTES or request.path.startswith("/static/"):
            request[CALLER] = None
        else:
            key = self._keys.identify(bearer(request.headers.get("Authorization", "")) or request.cookies.get(COOKIE, ""))
            if key is None:
                raise web.HTTPUnauthorized(text="an API key is needed: Authorization: Bearer <key>",
                                           headers={"WWW-Authenticate": 'Bearer realm="revive"'})
            request[CALLER] = key
        return await handler(request)

    async def create_session(self, request: web.Request) -> web.Response:
        """Keep the page's key in an HttpOnly cookie, so images and event streams carry it too."""
        secret = bearer(request.headers.get("Authorization", ""))
        key = self._keys.identify(secret) if self._keys is not None else ANONYMOUS
        if key is None:
            raise web.HTTPUnauthorized(text="that API key is not known here",
                                       headers={"WWW-Authenticate": 'Bearer realm="revive"'})
        response = web.json_response({"name": key.name, "admin": key.admin})
        if self._keys is not None:
            response.set_cookie(COOKIE, secret, httponly=True, samesite="Strict", path="/",
                                secure=request.secure)
        return response

    async def delete_session(self, _request: web.Request) -> web.Response:
        response = web.Response(status=204)
        response.del_cookie(COOKIE, path="/")
        return response

    async def _submit(self, request: web.Request) -> Job:
        key: ApiKey = request[CALLER]
        photos, fields = await read_upload(request, self._config)
        try:
            options = options_from_form(fields)
        except InvalidInput as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        enforce_photo_quota(self._keys, key, len(photos))
        return await self._jobs.submit(photos, options, key.name, key.max_jobs)

    async def create_restoration(self, request: web.Request) -> web.Response:
        """Synchronous: a job, awaited. If the client leaves, the job still finishes."""
        try:
            job = await self._submit(request)
        except QueueFull as error:
            return queue_full(error)
        except StorageFull as error:
            return storage_full(error)
        job = await asyncio.shield(self._jobs.wait(job))
        status = request_status(job.photos)
        body = job.to_json()
        if status != 200:
            failures = "; ".join(f"photo {p.index} ({p.filename}): {p.error['message']}" for p in job.photos if p.error)
            body["error"] = {"status": status, "message": failures}
        return web.json_response(body, status=status)

    async def create_job(self, request: web.Request) -> web.Response:
        try:
            job = await self._submit(request)
        except QueueFull as error:
            return queue_full(error)
        except StorageFull as error:
            return storage_full(error)
        body = {**job.to_json(), "links": job_links(job)}
        return web.json_response(body, status=202, headers={"Location": f"/v1/jobs/{job.id}"})

    async def _job(self, request: web.Request, job_id: str | None = None) -> Job:
        """The job, if the caller's key may see it; to any other key it does not exist."""
        job = await self._jobs.get(job_id or request.match_info["job_id"])
        if job is None or not request[CALLER].may_see(job.key):
            raise web.HTTPNotFound(text="no such job (it may have expired)")
        return job

    async def get_job(self, request: web.Request) -> web.Response:
        job = await self._job(request)
        return web.json_response({**job.to_json(), "links": job_links(job)})

    async def delete_job(self, request: web.Request) -> web.Response:
        """Cancels a queued or running job: 200 when done here, 202 when its owner (another replica)
        was asked to. Forgets a finished job and its files: 204."""
        job = await self._job(request)
        if job.state in FINISHED:
            await self._jobs.delete(job.id)
            return web.Response(status=204)
        cancelled = await self._jobs.cancel(job.id) or job
        return web.json_response(cancelled.to_json(), status=200 if cancelled.state == "cancelled" else 202)

    async def job_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `job` (the whole state) first, `photo` on every change, `end` last."""
        job = await self._job(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(kind: str, data: dict) -> None:
            # A reader that does not take the bytes in time is dropped; the job is not affected.
            await asyncio.wait_for(response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()),
                                   SSE_WRITE_TIMEOUT)

        async def keepalive() -> None:
            await asyncio.wait_for(response.write(b": keep-alive\n\n"), SSE_WRITE_TIMEOUT)

        try:
            if self._jobs.owns(job):
                followed = await self._follow_here(job, send, keepalive)
                if followed is None:
                    return response
                job = followed
            if job.state in FINISHED:
                await send("end", job.to_json())
            else:  # another replica runs it, or took it over from this one
                await self._follow_in_database(job, send)
        except (asyncio.TimeoutError, ConnectionResetError):
            metrics.LISTENERS_DROPPED.inc()  # a reader that stopped reading: its stream ends, the job goes on
        return response

    async def _follow_here(self, job: Job, send: Callable[[str, dict], Awaitable[None]],
                           keepalive: Callable[[], Awaitable[None]]) -> Job | None:
        """Relay a job this replica runs, event by event, until it ends here; None when this stream
        fell too far behind and was dropped (the job goes on)."""
        listener = self._jobs.subscribe(job)
        try:
            await send("job", job.to_json())
            while job.state not in FINISHED:
                try:
                    update = await asyncio.wait_for(listener.get(), SSE_KEEPALIVE)
                except asyncio.TimeoutError:
                    await keepalive()
                    continue
                if update.dropped:
                    await send("dropped", {"message": "this stream fell behind; reload the job's state"})
                    return None
                if update.photo is not None:
                    await send("photo", update.photo)
                if update.finished:
                    break
        finally:
            self._jobs.unsubscribe(job, listener)
        return job

    async def _follow_in_database(self, job: Job, send: Callable[[str, dict], Awaitable[None]]) -> None:
        """Another replica runs this job: relay its state as that replica writes it."""
        last: dict | None = None
        while True:
            current = await self._jobs.get(job.id)
            if current is None:
                return
            body = current.to_json()
            if body != last:
                await send("job", body)
                last = body
            if current.state in FINISHED:
                await send("end", body)
                return
            await asyncio.sleep(1.0)

    async def get_result(self, request: web.Request) -> web.StreamResponse:
        await self._job(request, request.match_info["request_id"])
        try:
            path = self._store.path(request.match_info["request_id"], int(request.match_info["photo"]), request.match_info["name"])
        except ValueError:
            raise web.HTTPNotFound(text="no such result") from None
        if not path.is_file():
            raise web.HTTPNotFound(text="no such result (it may have expired)")
        metrics.BYTES_OUT.inc(path.stat().st_size)
        return web.FileResponse(path, headers={"Cache-Control": "private, max-age=86400, immutable"})

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(json.loads(OPENAPI_PATH.read_text()))

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _request: web.Request) -> web.Response:
        """Ready means this gateway accepts jobs and serves status and results; upstreams are shown apart.

        A service being down makes photos wait (until their deadline), not the gateway unready: taking
        every gateway out of the load balancer would also take away status pages and downloads.
        """
        replicas = self._upstreams.readiness()
        ready = self._jobs.accepting
        body = {
            "ready": ready,
            "upstreams": {service: "SERVING" if "SERVING" in states.values() else "NOT_SERVING"
                          for service, states in replicas.items()},
            "replicas": replicas,
        }
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")
