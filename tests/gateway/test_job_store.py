"""The job database on both backends, real servers: claims, fencing, leases on the server's clock, expiry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.job_store import SqlJobStore, open_job_store


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


def run(coroutine):
    return asyncio.run(coroutine)


async def new_job(store: SqlJobStore, job_id: str, owner: str, lease: float, key: str = "team") -> None:
    photos = [{"index": 0, "filename": "a.jpg", "status": "queued"}, {"index": 1, "filename": "b.jpg", "status": "queued"}]
    await store.create(job_id, key, {"candidates": 2}, photos, owner, lease, 1000)


def test_a_claim_moves_the_epoch_on_and_fences_the_old_owner(database):
    async def scenario() -> None:
        first, second = open_job_store(database, Path()), open_job_store(database, Path())
        try:
            await new_job(first, "a" * 32, "first", lease=0.3)
            assert await second.claim("second", 30, 10) == []  # the lease is live
            assert await first.save_photo("a" * 32, 1, {"index": 0, "status": "done"})
            await asyncio.sleep(0.5)  # the first owner stalls past its lease
            [claimed] = await second.claim("second", 30, 10)
            assert (claimed.owner, claimed.epoch, claimed.state) == ("second", 2, "queued")
            assert claimed.photos[0]["status"] == "done"  # what had finished stays finished
            # Every write under the old epoch now changes nothing, and says so.
            assert not await first.save_photo("a" * 32, 1, {"index": 1, "status": "done"})
            assert not await first.save_job("a" * 32, 1, "done", "", 30)
            assert await first.renew({"a" * 32: 1}, 30) == {}
            assert await second.renew({"a" * 32: 2}, 30) == {"a" * 32: False}
            assert await second.save_job("a" * 32, 2, "done", "", 30)
            stored = await first.load("a" * 32)
            assert (stored.state, stored.epoch, stored.photos[1]["status"]) == ("done", 2, "queued")
            assert stored.finished is not None
        finally:
            await first.close()
            await second.close()

    run(scenario())


def test_replicas_claiming_at_once_never_take_the_same_job(database):
    async def scenario() -> None:
        stores = [open_job_store(database, Path()) for _ in range(3)]
        try:
            ids = [f"{index:032x}" for index in range(12)]
            for job_id in ids:
                await new_job(stores[0], job_id, "gone", lease=0.0)
            claims = await asyncio.gather(*(store.claim(f"replica-{n}", 30, 12) for n, store in enumerate(stores)))
            taken = [job.id for claim in claims for job in claim]
            assert sorted(taken) == ids  # every job claimed, none twice
        finally:
            for store in stores:
                await store.close()

    run(scenario())


def test_leases_are_measured_by_the_database_clock(database):
    async def scenario() -> None:
        store = open_job_store(database, Path())
        try:
            before = time.time()
            await new_job(store, "b" * 32, "owner", lease=60)
            stored = await store.load("b" * 32)
            server_now = await store.clock()
            assert abs(server_now - time.time()) < 5  # same host here; the point is who reads the clock
            assert stored.lease_until - stored.created == pytest.approx(60, abs=0.5)
            assert stored.created >= before - 5
            assert await store.release("owner") == 1  # a graceful stop: claimable at once
            assert [job.id for job in await store.claim("next", 30, 5)] == ["b" * 32]
        finally:
            await store.close()

    run(scenario())


def test_cancel_requests_reach_the_owner_and_finished_jobs_expire_oldest_first(database):
    async def scenario() -> None:
        store = open_job_store(database, Path())
        try:
            for job_id in ("1" * 32, "2" * 32, "3" * 32):
                await new_job(store, job_id, "owner", lease=30)
            assert await store.count_active("team") == 3
            assert await store.request_cancel("3" * 32)
            assert await store.renew({"3" * 32: 1}, 30) == {"3" * 32: True}
            for job_id in ("1" * 32, "2" * 32):
                assert await store.save_job(job_id, 1, "done", "", 30)
                await asyncio.sleep(0.05)
            assert not await store.delete_finished("3" * 32)  # still active
            # 3 x 1000 bytes against a budget of 2500: the oldest finished job goes first, the active one stays.
            expired = await store.expire(3600, 2500)
            assert expired.job_ids == ["1" * 32] and expired.bytes_kept == 2000
            assert (await store.expire(0, 0)).job_ids == ["2" * 32]
            assert await store.known(["1" * 32, "3" * 32]) == {"3" * 32}
        finally:
            await store.close()

    run(scenario())
