"""Job state in SQL: jobs, their photos, who owns each job, under which epoch, until when.

Why SQL and not a JSON file per job: claiming an orphaned job, checking that a write
comes from the job's current owner and deciding that a lease ran out must each be
one atomic step that every gateway replica agrees on. The database gives all three:

* **Claims** are one UPDATE over the rows whose lease has expired (PostgreSQL adds
  ``FOR UPDATE SKIP LOCKED``, so replicas claiming at once take different jobs
  instead of queueing on each other; SQLite serialises writers with BEGIN IMMEDIATE).
* **Fencing.** Each claim increments the job's ``epoch``. Every write names the
  epoch its writer holds and changes nothing when the epoch moved on: a replica that
  stalled past its lease and was replaced can no longer touch the job.
* **Leases** are times on the database's clock (``now`` below is evaluated by the
  server), so two hosts whose clocks disagree by a minute still agree on expiry.

Every call runs on one thread owned by the store: the event loop never waits on the
database, and writes reach it in the order they were made (a photo's "done" can
never be overtaken by its earlier "running").
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Protocol, TypeVar

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS revive_jobs (
        id TEXT PRIMARY KEY,
        api_key TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        options TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        finished DOUBLE PRECISION,
        owner TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS revive_photos (
        job_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (job_id, idx))""",
    "CREATE INDEX IF NOT EXISTS revive_jobs_lease ON revive_jobs (state, lease_until)",
    "CREATE INDEX IF NOT EXISTS revive_jobs_finished ON revive_jobs (finished)",
)

_ACTIVE_SQL = "state IN ('queued', 'running')"
_JOB_COLUMNS = "id, api_key, state, reason, options, created, finished, owner, epoch, lease_until, cancel_requested"


@dataclass(frozen=True)
class StoredJob:
    """A job's row and its photos' states, as last written by its owner."""

    id: str
    key: str
    state: str
    reason: str
    options: dict[str, Any]
    created: float
    finished: float | None
    owner: str
    epoch: int
    lease_until: float
    cancel_requested: bool
    photos: list[dict[str, Any]]


@dataclass(frozen=True)
class Expired:
    """What one expiry round removed, and what the rest still holds."""

    job_ids: list[str]
    bytes_kept: int


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    def execute(self, sql: str, params: Iterable[Any] = ()) -> Cursor: ...


T = TypeVar("T")


def on_store_thread(method: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """Turn a blocking method into a coroutine that runs it on the store's own thread."""

    @functools.wraps(method)
    async def call(self: "SqlJobStore", *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(method, self, *args))

    return call


class SqlJobStore(ABC):
    """The operations the gateway's job manager needs, in SQL both dialects accept.

    Queries are written with ``?`` placeholders and ``{now}`` for the server's clock in
    Unix seconds; a dialect supplies its placeholder, clock expression and transactions.
    """

    placeholder = "?"
    now_sql = ""
    #: Appended to the claim's row selection (PostgreSQL: FOR UPDATE SKIP LOCKED).
    claim_locking = ""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="job-store")

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """One transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def close_connection(self) -> None:
        """Close the connection (called on the store thread)."""

    def _sql(self, query: str) -> str:
        return query.replace("?", self.placeholder).replace("{now}", self.now_sql)

    def _run(self, tx: Transaction, query: str, *params: Any) -> Cursor:
        return tx.execute(self._sql(query), params)

    def _create_schema(self) -> None:
        with self.transaction() as tx:
            for statement in SCHEMA:
                tx.execute(statement)

    # --- the manager's operations (each a coroutine, run on the store thread) ----------

    @on_store_thread
    def create(self, job_id: str, key: str, options: dict[str, Any], photos: list[dict[str, Any]], owner: str,
               lease: float, size: int) -> StoredJob:
        """Record a new job, owned by `owner` under epoch 1; durable when this returns."""
        with self.transaction() as tx:
            self._run(tx, "INSERT INTO revive_jobs (id, api_key, state, reason, options, created, owner, epoch, "
                          "lease_until, bytes) VALUES (?, ?, 'queued', '', ?, {now}, ?, 1, {now} + ?, ?)",
                      job_id, key, json.dumps(options), owner, lease, size)
            for photo in photos:
                self._run(tx, "INSERT INTO revive_photos (job_id, idx, body) VALUES (?, ?, ?)",
                          job_id, photo["index"], json.dumps(photo))
            stored = self._load(tx, job_id)
        assert stored is not None
        return stored

    @on_store_thread
    def load(self, job_id: str) -> StoredJob | None:
        with self.transaction() as tx:
            return self._load(tx, job_id)

    def _load(self, tx: Transaction, job_id: str) -> StoredJob | None:
        row = self._run(tx, f"SELECT {_JOB_COLUMNS} FROM revive_jobs WHERE id = ?", job_id).fetchone()
        if row is None:
            return None
        photos = self._run(tx, "SELECT body FROM revive_photos WHERE job_id = ? ORDER BY idx", job_id).fetchall()
        return StoredJob(
            id=row[0], key=row[1], state=row[2], reason=row[3], options=json.loads(row[4]), created=float(row[5]),
            finished=None if row[6] is None else float(row[6]), owner=row[7], epoch=int(row[8]),
            lease_until=float(row[9]), cancel_requested=bool(row[10]), photos=[json.loads(p[0]) for p in photos])

    @on_store_thread
    def save_photo(self, job_id: str, epoch: int, photo: dict[str, Any]) -> bool:
        """Write one photo's state; False when `epoch` is no longer the job's (fenced: another owner)."""
        with self.transaction() as tx:
            if not self._holds(tx, job_id, epoch):
                return False
            self._run(tx, "UPDATE revive_photos SET body = ? WHERE job_id = ? AND idx = ?",
                      json.dumps(photo), job_id, photo["index"])
            return True

    @on_store_thread
    def save_job(self, job_id: str, epoch: int, state: str, reason: str, lease: float) -> bool:
        """Write the job's state (renewing its lease); False when fenced. A finished state stamps `finished`."""
        with self.transaction() as tx:
            cursor = self._run(
                tx, "UPDATE revive_jobs SET state = ?, reason = ?, lease_until = {now} + ?, "
                    "finished = CASE WHEN ? = 1 THEN {now} ELSE NULL END WHERE id = ? AND epoch = ?",
                state, reason, lease, int(state in FINISHED), job_id, epoch)
            return cursor.rowcount == 1

    @on_store_thread
    def set_bytes(self, job_id: str, size: int) -> None:
        """What the job's folder holds on the results volume (for the size budget)."""
        with self.transaction() as tx:
            self._run(tx, "UPDATE revive_jobs SET bytes = ? WHERE id = ?", size, job_id)

    @on_store_thread
    def renew(self, owned: dict[str, int], lease: float) -> dict[str, bool]:
        """Extend the leases of the jobs this replica runs ({id: epoch}).

        Returns {id: cancel requested} for the jobs still ours; an id missing from the
        answer was claimed by another replica (or removed) and must be abandoned.
        """
        still_ours: dict[str, bool] = {}
        with self.transaction() as tx:
            for job_id, epoch in owned.items():
                cursor = self._run(tx, f"UPDATE revive_jobs SET lease_until = {{now}} + ? WHERE id = ? AND epoch = ? "
                                       f"AND {_ACTIVE_SQL}", lease, job_id, epoch)
                if cursor.rowcount == 1:
                    row = self._run(tx, "SELECT cancel_requested FROM revive_jobs WHERE id = ?", job_id).fetchone()
                    still_ours[job_id] = bool(row[0])
        return still_ours

    @on_store_thread
    def claim(self, owner: str, lease: float, limit: int) -> list[StoredJob]:
        """Take over up to `limit` unfinished jobs whose lease ran out, oldest first, each under a new epoch.

        One statement claims them: two replicas never both get a job, and the old owner's
        writes are fenced from here on.
        """
        if limit <= 0:
            return []
        with self.transaction() as tx:
            rows = self._run(
                tx, f"SELECT id FROM revive_jobs WHERE {_ACTIVE_SQL} AND lease_until < {{now}} "
                    f"ORDER BY created LIMIT ? {self.claim_locking}", limit).fetchall()
            claimed = []
            for (job_id,) in rows:
                cursor = self._run(tx, f"UPDATE revive_jobs SET owner = ?, epoch = epoch + 1, state = 'queued', "
                                       f"lease_until = {{now}} + ? WHERE id = ? AND {_ACTIVE_SQL} "
                                       f"AND lease_until < {{now}}", owner, lease, job_id)
                if cursor.rowcount == 1:
                    stored = self._load(tx, job_id)
                    if stored is not None:
                        claimed.append(stored)
            return claimed

    @on_store_thread
    def release(self, owner: str) -> int:
        """A graceful stop: end this replica's leases now, so a restart or a peer takes its jobs at once."""
        with self.transaction() as tx:
            # A second in the past: "expired" must not hinge on two readings of the clock differing.
            return self._run(tx, f"UPDATE revive_jobs SET lease_until = {{now}} - 1 WHERE owner = ? AND {_ACTIVE_SQL}",
                             owner).rowcount

    @on_store_thread
    def request_cancel(self, job_id: str) -> bool:
        """Ask the owner (whichever replica) to cancel; it sees the request when it next renews."""
        with self.transaction() as tx:
            return self._run(tx, f"UPDATE revive_jobs SET cancel_requested = 1 WHERE id = ? AND {_ACTIVE_SQL}",
                             job_id).rowcount == 1

    @on_store_thread
    def delete_finished(self, job_id: str) -> bool:
        """Forget a finished job; False when it is unknown or still active."""
        with self.transaction() as tx:
            if self._run(tx, "DELETE FROM revive_jobs WHERE id = ? AND finished IS NOT NULL", job_id).rowcount != 1:
                return False
            self._run(tx, "DELETE FROM revive_photos WHERE job_id = ?", job_id)
            return True

    @on_store_thread
    def count_active(self, key: str) -> int:
        """Jobs of API key `key` queued or running on any replica (the per-key job quota)."""
        with self.transaction() as tx:
            return int(self._run(tx, f"SELECT COUNT(*) FROM revive_jobs WHERE api_key = ? AND {_ACTIVE_SQL}",
                                 key).fetchone()[0])

    @on_store_thread
    def known(self, job_ids: list[str]) -> set[str]:
        """Which of these ids have a row (folders without one are leftovers of a failed submit)."""
        found: set[str] = set()
        with self.transaction() as tx:
            for job_id in job_ids:
                if self._run(tx, "SELECT 1 FROM revive_jobs WHERE id = ?", job_id).fetchone() is not None:
                    found.add(job_id)
        return found

    @on_store_thread
    def expire(self, ttl: float, budget_bytes: int) -> Expired:
        """Remove finished jobs past their TTL, then the oldest finished while the total is over the budget."""
        with self.transaction() as tx:
            total = int(self._run(tx, "SELECT COALESCE(SUM(bytes), 0) FROM revive_jobs").fetchone()[0])
            finished = self._run(tx, "SELECT id, bytes, finished < {now} - ? FROM revive_jobs "
                                     "WHERE finished IS NOT NULL ORDER BY finished", ttl).fetchall()
            removed = []
            for job_id, size, past_ttl in finished:
                if not past_ttl and (not budget_bytes or total <= budget_bytes):
                    continue
                self._run(tx, "DELETE FROM revive_jobs WHERE id = ?", job_id)
                self._run(tx, "DELETE FROM revive_photos WHERE job_id = ?", job_id)
                total -= int(size)
                removed.append(job_id)
        return Expired(removed, total)

    @on_store_thread
    def clock(self) -> float:
        """The database's time, Unix seconds (what leases are measured by)."""
        with self.transaction() as tx:
            return float(self._run(tx, "SELECT {now}").fetchone()[0])

    def _holds(self, tx: Transaction, job_id: str, epoch: int) -> bool:
        return self._run(tx, "SELECT 1 FROM revive_jobs WHERE id = ? AND epoch = ?",
                         job_id, epoch).fetchone() is not None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.close_connection)
        self._thread.shutdown(wait=True)
