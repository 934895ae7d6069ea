"""Jobs: accepted work that outlives its HTTP request and the gateway process.

Every restoration, synchronous or not, becomes a job: its uploads and state
are written under <results_dir>/<job id>/ before it is acknowledged, a
bounded queue feeds a fixed number of workers (a full queue is HTTP 429),
and listeners (SSE, the gRPC stream, a waiting POST) subscribe to its
events. When the gateway restarts it finds the jobs that were queued or
running and resumes them, skipping photos that had finished; a job whose
uploads are gone is marked failed with the reason. Old jobs expire.

Several gateway replicas may share one results volume. Each job has an owner
that renews a lease (a heartbeat in job.json); any replica answers reads from
disk, asks the owner to cancel through a marker file, and adopts the jobs of
an owner whose lease ran out, claiming each with an exclusive-create file so
that exactly one replica takes it over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from google.protobuf.json_format import MessageToDict, ParseDict
from revive.v1 import common_pb2, gateway_pb2

from gateway import metrics
from gateway.auth import ApiKey, Keys
from gateway.pipeline import PhotoUpload, Pipeline
from gateway.report import PhotoReport
from gateway.storage import new_request_id
from services.common.tracing import tracer

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
JOB_FILE = "job.json"
UPLOADS = "uploads"
CANCEL_MARKER = "cancel-requested"
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


class StorageFull(Exception):
    """The results volume cannot take this job's uploads (full, read-only): nothing was accepted."""


def _write_durably(path: Path, data: bytes) -> None:
    """Write, fsync, then rename into place: readers never see half a file, and a node crash after
    the job was acknowledged does not lose it."""
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


class QueueFull(Exception):
    """No room for another job (the queue, or the caller's quota); retry after `retry_after` seconds."""

    def __init__(self, retry_after: int, reason: str = "the job queue is full") -> None:
        super().__init__(f"{reason}; retry in {retry_after} s")
        self.retry_after = retry_after


def enforce_photo_quota(keys: Keys | None, key: ApiKey, count: int) -> None:
    """QueueFull (HTTP 429, gRPC RESOURCE_EXHAUSTED) when `count` more photos would pass the key's minute."""
    if keys is not None and (wait := keys.photos_allowed(key, count)):
        raise QueueFull(retry_after=int(wait + 0.999),
                        reason=f"the key {key.name!r} may send {key.photos_per_minute} photos a minute")


#: Updates a listener may have waiting; a reader that falls further behind is dropped (the job goes on).
LISTENER_QUEUE = 256


@dataclass
class Update:
    """What a subscriber receives: the raw event (for gRPC) and the photo's new state (for JSON)."""

    event: gateway_pb2.RestoreEvent | None
    photo: dict[str, Any] | None
    finished: bool = False
    #: The listener fell too far behind and was dropped: this is its last update.
    dropped: bool = False


class Listener:
    """One subscriber's bounded queue. Only listeners that stream events (the gRPC API) get image
    bytes; JSON listeners (SSE, waiting requests) get the photo's state, so a slow one pins no PNGs."""

    def __init__(self, images: bool) -> None:
        self.images = images
        self.queue: asyncio.Queue[Update] = asyncio.Queue(maxsize=LISTENER_QUEUE)
        self.dropped = False

    def offer(self, update: Update) -> None:
        if self.dropped:
            return
        if not self.images and update.event is not None:
            update = Update(None, update.photo, update.finished)
        try:
            self.queue.put_nowait(update)
        except asyncio.QueueFull:
            self.dropped = True
            metrics.LISTENERS_DROPPED.inc()
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Update(None, None, finished=True, dropped=True))

    async def get(self) -> Update:
        return await self.queue.get()


@dataclass
class Job:
    id: str
    options: common_pb2.RestoreOptions
    photos: list[PhotoReport]
    created: float = field(default_factory=time.time)
    state: str = "queued"
    reason: str = ""
    owner: str = ""
    #: The API key (its name) that made the job: only it, and admin keys, may see the job.
    key: str = ""
    heartbeat: float = 0.0
    task: asyncio.Task | None = None
    listeners: set[Listener] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "created": self.created,
            "owner": self.owner,
            "key": self.key,
            "heartbeat": self.heartbeat,
            # uint64 seeds would come out as JSON strings (proto3's JSON mapping); clients expect numbers.
            "options": {key: int(value) if key == "seed" else value
                        for key, value in MessageToDict(self.options, preserving_proto_field_name=True).items()},
            "photos": [photo.to_json() for photo in self.photos],
        }
        if self.reason:
            body["reason"] = self.reason
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Job":
        return cls(
            id=body["id"],
            options=ParseDict(body["options"], common_pb2.RestoreOptions()),
            photos=[PhotoReport.from_json(photo) for photo in body["photos"]],
            created=body["created"],
            state=body["state"],
            reason=body.get("reason", ""),
            owner=body.get("owner", ""),
            key=body.get("key", ""),
            heartbeat=body.get("heartbeat", 0.0),
        )

    def notify(self, update: Update) -> None:
        for listener in list(self.listeners):
            listener.offer(update)
            if listener.dropped:
                self.listeners.discard(listener)


class JobManager:
    def __init__(
        self, pipeline: Pipeline, root: Path, workers: int, max_queued: int, ttl_seconds: float, lease_seconds: float = 30.0,
        budget_bytes: int = 0,
    ) -> None:
        self._pipeline = pipeline
        self._root = root
        self._workers = workers
        self._ttl = ttl_seconds
        self._lease = lease_seconds
        #: Bytes the results volume may hold (0 = no limit); past it, the oldest finished jobs go first.
        self._budget = budget_bytes
        #: Unique per process; the host part lets a restarted pod take its own jobs back at once.
        self.instance = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max_queued)
        self._jobs: dict[str, Job] = {}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        await self._adopt(startup=True)
        self._tasks = [asyncio.create_task(self._work(), name=f"job-worker-{i}") for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="job-housekeeping"))

    @property
    def accepting(self) -> bool:
        """Workers are running, so a submitted job will be worked on (what readiness means)."""
        return bool(self._tasks) and not all(task.done() for task in self._tasks)

    async def stop(self) -> None:
        """Stop the workers; jobs still running stay 'running' on disk and resume at the next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- submitting and reading -------------------------------------------------

    async def submit(self, photos: list[PhotoUpload], options: common_pb2.RestoreOptions, key: str = "",
                     max_jobs: int = 0) -> Job:
        """Accept a job for API key `key`, which may have at most `max_jobs` (0 = any) queued or running."""
        if self._queue.full():
            raise QueueFull(retry_after=max(1, 5 * self._queue.qsize() // max(1, self._workers)))
        if max_jobs and sum(job.key == key and job.state in ACTIVE for job in self._jobs.values()) >= max_jobs:
            raise QueueFull(retry_after=10, reason=f"the key {key!r} already has {max_jobs} jobs queued or running")
        job = Job(new_request_id(), options, [PhotoReport(p.index, p.filename) for p in photos], owner=self.instance,
                  key=key)
        try:  # on disk before it is acknowledged: a restart will not lose it (off the event loop: 10 x 50 MB)
            await asyncio.to_thread(self._write_uploads, job, photos)
        except OSError as error:
            await asyncio.to_thread(shutil.rmtree, self._dir(job.id), True)
            raise StorageFull(f"the gateway cannot store the uploads: {error.strerror or error}") from None
        if self._queue.full():  # filled while the uploads were written
            await asyncio.to_thread(shutil.rmtree, self._dir(job.id), True)
            raise QueueFull(retry_after=max(1, 5 * self._queue.qsize() // max(1, self._workers)))
        self._jobs[job.id] = job
        self._queue.put_nowait(job.id)
        metrics.JOBS_QUEUED.set(self._queue.qsize())
        return job

    def get(self, job_id: str) -> Job | None:
        """This replica's job, or another replica's as last written to the shared volume."""
        return self._jobs.get(job_id) or self._read(job_id)

    def owns(self, job: Job) -> bool:
        return self._jobs.get(job.id) is job

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is None or job.state not in ACTIVE:
            return job
        if not self.owns(job):
            (self._dir(job_id) / CANCEL_MARKER).touch()  # the owner acts on it within a heartbeat
            return job
        job.state, job.reason = "cancelled", "cancelled by the client"
        if job.task is not None:
            job.task.cancel()  # reaches the in-flight upstream RPCs
        for photo in job.photos:
            photo.cancel()
        self._finish(job)
        return job

    async def delete(self, job_id: str) -> bool:
        """Forget a finished job and its files."""
        job = self.get(job_id)
        if job is None or job.state in ACTIVE:
            return False
        self._jobs.pop(job_id, None)
        await asyncio.to_thread(shutil.rmtree, self._dir(job_id), True)
        return True

    def subscribe(self, job: Job, images: bool = False) -> Listener:
        listener = Listener(images)
        job.listeners.add(listener)
        return listener

    @staticmethod
    def unsubscribe(job: Job, listener: Listener) -> None:
        job.listeners.discard(listener)

    async def wait(self, job: Job) -> None:
        """Until the job ends (each update is only a wake-up, so falling behind is harmless)."""
        while job.state in ACTIVE:
            listener = self.subscribe(job)
            try:
                while job.state in ACTIVE and not (await listener.get()).dropped:
                    pass
            finally:
                self.unsubscribe(job, listener)

    # --- running ----------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            metrics.JOBS_QUEUED.set(self._queue.qsize())
            job = self._jobs.get(job_id)
            if job is None or job.state != "queued":
                continue  # cancelled while it waited
            job.state = "running"
            metrics.JOB_START_SECONDS.observe(max(0.0, time.time() - job.created))
            self._save(job)
            job.task = asyncio.create_task(self._run(job))
            try:
                await asyncio.wait({job.task})
            except asyncio.CancelledError:
                job.task.cancel()  # shutting down: leave it 'running' on disk to resume
                raise

    async def _run(self, job: Job) -> None:
        """Run the job's photos; whatever goes wrong, the job ends with a reason and its waiters are released."""
        try:
            with tracer.start_as_current_span("job", attributes={"revive.job": job.id, "revive.photos": len(job.photos)}):
                await self._run_photos(job)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("job failed", extra={"job": job.id})
            if job.state in ACTIVE:
                job.state, job.reason = "failed", f"internal error: {error}"
                self._finish(job)

    async def _run_photos(self, job: Job) -> None:
        start = time.perf_counter()
        pending = [photo for photo in job.photos if not photo.finished]
        uploads = self._dir(job.id) / UPLOADS

        def read() -> list[PhotoUpload]:
            return [PhotoUpload(p.index, p.filename, (uploads / str(p.index)).read_bytes()) for p in pending]

        try:
            photos = await asyncio.to_thread(read)
        except OSError as error:
            job.state, job.reason = "failed", f"uploads unreadable after a restart: {error}"
            self._finish(job)
            return
        for photo in pending:  # a resumed photo starts over
            job.photos[photo.index] = PhotoReport(photo.index, photo.filename)
        await self._pipeline.run(job.id, photos, job.options, lambda event: self._on_event(job, event))
        del photos
        if job.state == "running":
            done = any(photo.status == "done" for photo in job.photos)
            job.state = "done" if done else "failed"
            job.reason = "" if done else "no photo could be restored; see each photo's error"
            metrics.JOB_SECONDS.labels(job.state).observe(time.perf_counter() - start)
            self._finish(job)

    def _on_event(self, job: Job, event: gateway_pb2.RestoreEvent) -> None:
        photo = job.photos[event.photo_index]
        photo.apply(event)
        if event.WhichOneof("event") != "progress":
            self._save(job)
        job.notify(Update(event, photo.to_json()))

    def _finish(self, job: Job) -> None:
        """Record the end, release every waiter, and drop the uploads: a finished job never runs again."""
        metrics.JOBS.labels(job.state).inc()
        self._save(job)
        job.notify(Update(None, None, finished=True))
        self._in_background(shutil.rmtree, self._dir(job.id) / UPLOADS, True)

    def _in_background(self, function: Callable[..., object], *args: object) -> None:
        """File work that nobody waits for, off the event loop."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(function, *args))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- disk -------------------------------------------------------------------

    def _write_uploads(self, job: Job, photos: list[PhotoUpload]) -> None:
        uploads = self._dir(job.id) / UPLOADS
        uploads.mkdir(parents=True)
        for photo in photos:
            _write_durably(uploads / str(photo.index), photo.data)
        self._write_state(job)

    def _dir(self, job_id: str) -> Path:
        return self._root / job_id

    def _write_state(self, job: Job) -> None:
        job.heartbeat = time.time()
        _write_durably(self._dir(job.id) / JOB_FILE, json.dumps(job.to_json()).encode())

    def _save(self, job: Job) -> None:
        """The job's state to disk; a failure (disk full) is logged and counted, never raised into a job."""
        try:
            self._write_state(job)
        except OSError as error:
            metrics.BACKGROUND_FAILURES.labels("job-save").inc()
            log.error("cannot save job state", extra={"job": job.id, "error": str(error)})

    def _read(self, job_id: str) -> Job | None:
        if not _JOB_ID.match(job_id):
            return None
        try:
            return Job.from_json(json.loads((self._dir(job_id) / JOB_FILE).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as error:
            log.warning("unreadable job", extra={"job": job_id, "error": str(error)})
            return None

    def _claimable(self, job: Job, startup: bool, known: set[str]) -> bool:
        """An unfinished job nobody is running: its owner's lease ran out, or it was ours before a restart."""
        if job.state not in ACTIVE or job.id in known:
            return False
        same_host = job.owner.split("/", 1)[0] == self.instance.split("/", 1)[0]
        return (startup and same_host) or time.time() - job.heartbeat > self._lease

    def _claim_orphans(self, startup: bool, known: set[str]) -> list[Job]:
        """The unfinished jobs whose owner is gone, each claimed by this replica alone.

        Reads every job's state, so it runs in a thread, with `known` (the ids this replica has)
        taken on the event loop.
        """
        claimed = []
        for path in sorted(self._root.glob(f"*/{JOB_FILE}"), key=lambda p: p.stat().st_mtime):
            job = self._read(path.parent.name)
            if job is None or not self._claimable(job, startup, known):
                continue
            try:  # exactly one replica creates this file for this lease
                os.close(os.open(self._dir(job.id) / f"claim-{job.heartbeat:.6f}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            claimed.append(job)
        return claimed

    async def _adopt(self, startup: bool = False) -> None:
        """Take over the unfinished jobs whose owner is gone and queue them again."""
        for job in await asyncio.to_thread(self._claim_orphans, startup, set(self._jobs)):
            if job.id in self._jobs:  # submitted meanwhile: cannot be, ids are new, but never run one twice
                continue
            job.owner = self.instance
            self._jobs[job.id] = job
            if self._queue.full():
                job.state, job.reason = "failed", "its gateway stopped and the queue here was full"
                self._finish(job)
                continue
            job.state = "queued"
            self._save(job)
            self._queue.put_nowait(job.id)
            log.info("job adopted", extra={"job": job.id})
        metrics.JOBS_QUEUED.set(self._queue.qsize())

    async def _housekeeping(self) -> None:
        """Renew leases, act on cancel markers, adopt orphaned jobs, expire old ones.

        Supervised: a round that fails (a folder another replica removed meanwhile, a full disk) is
        logged and counted, and the next round runs as usual.
        """
        tick = max(0.2, min(self._lease / 3, self._ttl / 4, 10.0))
        while True:
            await asyncio.sleep(tick)
            try:
                for job in list(self._jobs.values()):
                    if job.state not in ACTIVE:
                        continue
                    if (self._dir(job.id) / CANCEL_MARKER).exists():
                        self.cancel(job.id)
                    else:
                        self._save(job)
                await self._adopt()
                active = {job_id for job_id, job in self._jobs.items() if job.state in ACTIVE}
                for job_id in await asyncio.to_thread(self._expire, active):
                    self._jobs.pop(job_id, None)
            except Exception:
                log.exception("housekeeping round failed")
                metrics.BACKGROUND_FAILURES.labels("job-housekeeping").inc()

    def _expire(self, active: set[str]) -> list[str]:
        """Remove finished jobs past their TTL, then the oldest while the volume is over its budget.

        Runs in a thread (it walks every job's files); returns the ids removed.
        """
        cutoff = time.time() - self._ttl
        finished: list[tuple[float, int, Path]] = []
        kept_bytes = 0
        for folder in list(self._root.iterdir()):
            try:
                size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
                modified = folder.stat().st_mtime
            except FileNotFoundError:  # another replica removed it meanwhile
                continue
            kept_bytes += size
            if folder.name in active:
                continue
            on_disk = self._read(folder.name)
            if on_disk is not None and on_disk.state in ACTIVE:
                continue  # another replica's running job
            finished.append((modified, size, folder))
        removed = []
        for modified, size, folder in sorted(finished, key=lambda entry: entry[0]):
            if modified >= cutoff and (not self._budget or kept_bytes <= self._budget):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            kept_bytes -= size
            removed.append(folder.name)
        metrics.RESULT_BYTES.set(kept_bytes)
        return removed
