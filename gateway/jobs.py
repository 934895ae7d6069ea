"""Jobs: accepted work that outlives its HTTP request and the gateway process.

Every restoration, synchronous or not, becomes a job. Its uploads are files under
<results_dir>/<job id>/uploads (written once, fsynced, renamed into place) and its
state is rows in the job database (gateway/job_store: SQLite by default, PostgreSQL
when replicas share work), both durable before the job is acknowledged. A bounded
queue feeds a fixed number of workers (a full queue is HTTP 429); listeners (SSE,
the gRPC stream, a waiting POST) subscribe to its events.

Each job has one owner, which holds a lease measured by the database's clock and
renews it while it works. Any replica answers reads from the database and asks the
owner to cancel through it. When a lease runs out (the owner crashed, hung or lost
its connection) another replica claims the job under a new ownership epoch and runs
what had not finished; the old owner's writes carry the old epoch and change
nothing, so a job is never run for two owners at once. A graceful stop ends its
leases at once, so a restart resumes its jobs without waiting. Old jobs expire.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from google.protobuf.json_format import MessageToDict, ParseDict
from revive.v1 import common_pb2, gateway_pb2

from gateway import metrics
from gateway.auth import ApiKey, Keys
from gateway.job_store import ACTIVE, FINISHED, SqlJobStore, StoredJob

__all__ = ["ACTIVE", "FINISHED", "Job", "JobManager", "QueueFull", "StorageFull", "enforce_photo_quota"]
from gateway.pipeline import PhotoUpload, Pipeline
from gateway.report import PhotoReport
from gateway.storage import new_request_id, write_durably
from services.common.tracing import tracer

log = logging.getLogger(__name__)

UPLOADS = "uploads"
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: A job folder with no row is what a failed submit left; removed once older than this.
_LEFTOVER_SECONDS = 600.0


class StorageFull(Exception):
    """The results volume cannot take this job's uploads (full, read-only): nothing was accepted."""


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
    #: Ownership epoch: which claim of the job this copy belongs to (every write is checked against it).
    epoch: int = 1
    #: Its final state is in the database (until then this replica keeps it and retries the write).
    end_recorded: bool = False
    task: asyncio.Task | None = None
    #: Photo endings waiting for their write: a photo is shown finished only once that is durable.
    endings: set[asyncio.Task] = field(default_factory=set)
    listeners: set[Listener] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "created": self.created,
            "owner": self.owner,
            "epoch": self.epoch,
            "key": self.key,
            "options": options_to_json(self.options),
            "photos": [photo.to_json() for photo in self.photos],
        }
        if self.reason:
            body["reason"] = self.reason
        return body

    @classmethod
    def from_stored(cls, stored: StoredJob) -> "Job":
        return cls(
            id=stored.id,
            options=ParseDict(stored.options, common_pb2.RestoreOptions()),
            photos=[PhotoReport.from_json(photo) for photo in stored.photos],
            created=stored.created,
            state=stored.state,
            reason=stored.reason,
            owner=stored.owner,
            key=stored.key,
            epoch=stored.epoch,
        )

    def notify(self, update: Update) -> None:
        for listener in list(self.listeners):
            listener.offer(update)
            if listener.dropped:
                self.listeners.discard(listener)


def options_to_json(options: common_pb2.RestoreOptions) -> dict[str, Any]:
    # uint64 seeds would come out as JSON strings (proto3's JSON mapping); clients expect numbers.
    return {key: int(value) if key == "seed" else value
            for key, value in MessageToDict(options, preserving_proto_field_name=True).items()}


class JobManager:
    def __init__(
        self, pipeline: Pipeline, root: Path, store: SqlJobStore, workers: int, max_queued: int, ttl_seconds: float,
        lease_seconds: float = 30.0, budget_bytes: int = 0,
    ) -> None:
        self._pipeline = pipeline
        self._root = root
        self._store = store
        self._workers = workers
        self._ttl = ttl_seconds
        self._lease = lease_seconds
        #: Bytes the results volume may hold (0 = no limit); past it, the oldest finished jobs go first.
        self._budget = budget_bytes
        #: Unique per process: which replica owns a job is only ever decided by the database.
        self.instance = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max_queued)
        self._jobs: dict[str, Job] = {}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        await self._adopt()
        self._tasks = [asyncio.create_task(self._work(), name=f"job-worker-{i}") for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="job-housekeeping"))

    @property
    def accepting(self) -> bool:
        """Workers are running, so a submitted job will be worked on (what readiness means)."""
        return bool(self._tasks) and not all(task.done() for task in self._tasks)

    async def stop(self) -> None:
        """Stop the workers and hand this replica's unfinished jobs back (their leases end now)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for job in self._jobs.values():
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await self._store.release(self.instance)
        except Exception as error:  # the database is gone: the leases run out by themselves
            log.warning("could not release job leases", extra={"error": str(error)})
        await self._store.close()

    # --- submitting and reading -------------------------------------------------

    async def submit(self, photos: list[PhotoUpload], options: common_pb2.RestoreOptions, key: str = "",
                     max_jobs: int = 0) -> Job:
        """Accept a job for API key `key`, which may have at most `max_jobs` (0 = any) queued or running."""
        if self._queue.full():
            raise QueueFull(retry_after=self._retry_after())
        if max_jobs and await self._store.count_active(key) >= max_jobs:
            raise QueueFull(retry_after=10, reason=f"the key {key!r} already has {max_jobs} jobs queued or running")
        job = Job(new_request_id(), options, [PhotoReport(p.index, p.filename) for p in photos], owner=self.instance,
                  key=key)
        folder = self._dir(job.id)
        try:  # on disk before it is acknowledged: a restart will not lose it (off the event loop: 10 x 50 MB)
            await asyncio.to_thread(self._write_uploads, folder, photos)
            stored = await self._store.create(job.id, key, options_to_json(options),
                                              [photo.to_json() for photo in job.photos], self.instance, self._lease,
                                              sum(len(photo.data) for photo in photos))
        except OSError as error:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise StorageFull(f"the gateway cannot store the uploads: {error.strerror or error}") from None
        job.created = stored.created
        if self._queue.full():  # filled while the uploads were written: the job ends before it starts
            job.state, job.reason = "failed", "the job queue filled while the photos were stored"
            await self._store.save_job(job.id, job.epoch, job.state, job.reason, self._lease)
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise QueueFull(retry_after=self._retry_after())
        self._jobs[job.id] = job
        self._queue.put_nowait(job.id)
        metrics.JOBS_QUEUED.set(self._queue.qsize())
        return job

    def _retry_after(self) -> int:
        return max(1, 5 * self._queue.qsize() // max(1, self._workers))

    async def get(self, job_id: str) -> Job | None:
        """This replica's job, or another replica's as last written to the database."""
        if job_id in self._jobs:
            return self._jobs[job_id]
        if not _JOB_ID.match(job_id):
            return None
        stored = await self._store.load(job_id)
        return None if stored is None else Job.from_stored(stored)

    def owns(self, job: Job) -> bool:
        return self._jobs.get(job.id) is job

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel here when this replica runs the job; otherwise ask its owner through the database."""
        job = self._jobs.get(job_id)
        if job is None:
            job = await self.get(job_id)
            if job is not None and job.state in ACTIVE:
                await self._store.request_cancel(job_id)
            return job
        self.cancel_here(job_id)
        return job

    def cancel_here(self, job_id: str) -> bool:
        """Cancel the job if this replica runs it (and it is still active); False otherwise."""
        job = self._jobs.get(job_id)
        if job is None or job.state not in ACTIVE:
            return False
        job.state, job.reason = "cancelled", "cancelled by the client"
        if job.task is not None:
            job.task.cancel()  # reaches the in-flight upstream RPCs
        for photo in job.photos:  # written before the job's end: from then on readers see the database's copy
            if not photo.finished:
                photo.cancel()
                self._persist(self._store.save_photo(job.id, job.epoch, photo.to_json()), job)
        self._finish(job)
        return True

    async def delete(self, job_id: str) -> bool:
        """Forget a finished job and its files."""
        if not _JOB_ID.match(job_id) or not await self._store.delete_finished(job_id):
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

    async def wait(self, job: Job) -> Job:
        """The job once it has ended: followed here while this replica runs it (each update is only a
        wake-up, so falling behind is harmless), then in the database if another replica took it over."""
        while job.state in ACTIVE and self.owns(job):
            listener = self.subscribe(job)
            try:
                while job.state in ACTIVE and self.owns(job) and not (await listener.get()).finished:
                    pass
            finally:
                self.unsubscribe(job, listener)
        while job.state in ACTIVE:
            await asyncio.sleep(1.0)
            current = await self.get(job.id)
            if current is None:  # deleted meanwhile: nothing more will happen to it
                return job
            job = current
        return job

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
            self._persist(self._store.save_job(job.id, job.epoch, job.state, job.reason, self._lease), job)
            job.task = asyncio.create_task(self._run(job))
            try:
                await asyncio.wait({job.task})
            except asyncio.CancelledError:
                job.task.cancel()  # shutting down: stop() hands the job back to be resumed
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
        if job.endings:
            await asyncio.wait(set(job.endings))
        if job.state == "running":
            done = any(photo.status == "done" for photo in job.photos)
            job.state = "done" if done else "failed"
            job.reason = "" if done else "no photo could be restored; see each photo's error"
            metrics.JOB_SECONDS.labels(job.state).observe(time.perf_counter() - start)
            self._finish(job)

    def _on_event(self, job: Job, event: gateway_pb2.RestoreEvent) -> None:
        photo = job.photos[event.photo_index]
        kind = event.WhichOneof("event")
        if kind in ("done", "failed"):
            self._end_photo_when_saved(job, photo, event)
            return
        photo.apply(event)
        if kind != "progress":
            self._persist(self._store.save_photo(job.id, job.epoch, photo.to_json()), job)
        job.notify(Update(event, photo.to_json()))

    def _end_photo_when_saved(self, job: Job, photo: PhotoReport, event: gateway_pb2.RestoreEvent) -> None:
        """Show a photo finished only after its final state is written: a reader who saw it done, and a
        gateway that dies a moment later, must not see it run again on the replica that takes the job over."""
        ended = copy.deepcopy(photo)
        ended.apply(event)

        def publish() -> None:
            photo.apply(event)
            job.notify(Update(event, photo.to_json()))

        task = self._persist(self._store.save_photo(job.id, job.epoch, ended.to_json()), job, then=publish)
        job.endings.add(task)
        task.add_done_callback(job.endings.discard)

    def _finish(self, job: Job) -> None:
        """Record the end, release every waiter, and drop the uploads: a finished job never runs again."""
        metrics.JOBS.labels(job.state).inc()
        self._persist(self._record_end(job), job)
        job.notify(Update(None, None, finished=True))

    async def _record_end(self, job: Job) -> bool:
        if not await self._store.save_job(job.id, job.epoch, job.state, job.reason, self._lease):
            return False
        size = await asyncio.to_thread(self._drop_uploads, self._dir(job.id))
        await self._store.set_bytes(job.id, size)
        job.end_recorded = True
        if self._jobs.get(job.id) is job:  # from now on every replica reads it from the database
            del self._jobs[job.id]
        return True

    def _persist(self, write: Awaitable[bool | None], job: Job,
                 then: Callable[[], None] | None = None) -> asyncio.Task:
        """A state write nobody waits for. The store's single thread keeps the writes in order; a write
        refused because the job has a newer owner abandons it here, and a failing one is logged and counted.
        `then` runs once the write is done, or has failed (what it records exists; only its durability is
        lost), but not when the job was abandoned."""

        async def persist() -> None:
            try:
                if await write is False:
                    self._abandon(job)
                    return
            except Exception as error:
                metrics.BACKGROUND_FAILURES.labels("job-save").inc()
                log.error("cannot save job state", extra={"job": job.id, "error": str(error)})
            if then is not None:
                then()

        task = asyncio.get_running_loop().create_task(persist())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _abandon(self, job: Job) -> None:
        """Another replica claimed this job (this one stalled past its lease): stop working on it at once."""
        if self._jobs.get(job.id) is not job:
            return
        log.warning("job taken over by another gateway; abandoning it", extra={"job": job.id, "epoch": job.epoch})
        metrics.JOBS_FENCED.inc()
        del self._jobs[job.id]
        if job.task is not None:
            job.task.cancel()
        job.notify(Update(None, None, finished=True))

    # --- files ------------------------------------------------------------------

    @staticmethod
    def _write_uploads(folder: Path, photos: list[PhotoUpload]) -> None:
        uploads = folder / UPLOADS
        uploads.mkdir(parents=True)
        for photo in photos:
            write_durably(uploads / str(photo.index), photo.data)

    @staticmethod
    def _drop_uploads(folder: Path) -> int:
        """Remove the uploads of a finished job; returns the bytes its folder still holds (results)."""
        shutil.rmtree(folder / UPLOADS, ignore_errors=True)
        return folder_bytes(folder)

    def _dir(self, job_id: str) -> Path:
        return self._root / job_id

    # --- ownership --------------------------------------------------------------

    async def _adopt(self) -> None:
        """Claim the unfinished jobs whose owner's lease ran out, as many as the queue has room for."""
        room = self._queue.maxsize - self._queue.qsize()
        for stored in await self._store.claim(self.instance, self._lease, room):
            job = Job.from_stored(stored)
            self._jobs[job.id] = job
            self._queue.put_nowait(job.id)
            metrics.JOBS_ADOPTED.inc()
            log.info("job adopted", extra={"job": job.id, "epoch": job.epoch})
        metrics.JOBS_QUEUED.set(self._queue.qsize())

    async def _renew(self) -> None:
        """Extend the leases of the jobs running here; act on cancel requests; abandon jobs claimed elsewhere."""
        owned = {job.id: job.epoch for job in self._jobs.values() if job.state in ACTIVE}
        if not owned:
            return
        still_ours = await self._store.renew(owned, self._lease)
        for job_id in owned:
            job = self._jobs.get(job_id)
            if job is None or job.state not in ACTIVE:
                continue
            if job_id not in still_ours:
                self._abandon(job)
            elif still_ours[job_id]:
                self.cancel_here(job_id)

    async def _housekeeping(self) -> None:
        """Renew leases, act on cancel requests, adopt orphaned jobs, expire old ones.

        Supervised: a round that fails (the database restarting, a full disk) is logged and
        counted, and the next round runs as usual.
        """
        tick = max(0.2, min(self._lease / 3, self._ttl / 4, 10.0))
        while True:
            await asyncio.sleep(tick)
            try:
                await self._renew()
                await self._adopt()
                await self._expire()
            except Exception:
                log.exception("housekeeping round failed")
                metrics.BACKGROUND_FAILURES.labels("job-housekeeping").inc()
            for job in list(self._jobs.values()):
                if job.state in FINISHED and not job.end_recorded:  # the database was away when it ended
                    self._persist(self._record_end(job), job)

    async def _expire(self) -> None:
        """Drop finished jobs past their TTL or over the size budget, and leftovers of failed submits."""
        expired = await self._store.expire(self._ttl, self._budget)
        metrics.RESULT_BYTES.set(expired.bytes_kept)
        folders = await asyncio.to_thread(self._job_folders)
        unknown = set(folders) - await self._store.known(list(folders))
        leftovers = [job_id for job_id in unknown if time.time() - folders[job_id] > _LEFTOVER_SECONDS]
        for job_id in [*expired.job_ids, *leftovers]:
            await asyncio.to_thread(shutil.rmtree, self._dir(job_id), True)

    def _job_folders(self) -> dict[str, float]:
        """Job folders on the volume and when each last changed."""
        folders = {}
        for folder in self._root.iterdir():
            try:
                if _JOB_ID.match(folder.name) and folder.is_dir():
                    folders[folder.name] = folder.stat().st_mtime
            except FileNotFoundError:  # another replica removed it meanwhile
                continue
        return folders


def folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            continue
    return total
