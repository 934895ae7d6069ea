"""The gateway holds up: a full disk fails jobs with a reason, a slow reader is dropped (never the job),
finished jobs leave no uploads behind, and old results go when the volume is over its budget."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import requests

from gateway import jobs
from tests.cluster import GatewayThread, gateway_config, targets
from tests.gateway.test_http_api import restore
from tests.gateway.test_jobs import submit, wait_for
from tests.photos import encode, portrait


@pytest.fixture
def tiny_volume(tmp_path: Path):
    """A 700 KB filesystem for the results: room for a job's uploads, not for all of its results."""
    mount = tmp_path / "volume"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_photos_with_a_reason_and_the_gateway_stays_up(detector, generator, upscaler, tiny_volume):
    gateway = GatewayThread(gateway_config(tiny_volume, targets([detector]), targets([generator]), targets([upscaler])))
    try:
        reply = restore(gateway.url, [("big.png", encode(portrait(400, 480, seed=2), "PNG"))], candidates=4, upscale=2)
        assert reply.status_code in (200, 503, 507), reply.text
        if reply.status_code != 507:  # the uploads fitted; the results did not
            photo = reply.json()["photos"][0]
            assert photo["status"] == "failed" and "could not store the results" in photo["error"]["message"]
        assert requests.get(f"{gateway.url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{gateway.url}/readyz", timeout=10).json()["ready"] is True
    finally:
        gateway.stop()


def test_a_reader_that_never_reads_is_dropped_and_the_job_finishes(gateway, monkeypatch):
    monkeypatch.setattr(jobs, "LISTENER_QUEUE", 4)
    reply = submit(gateway.url, [encode(portrait(160, 200, seed=i)) for i in range(4)], candidates=4)
    job_id = reply.json()["id"]
    manager = gateway.gateway.jobs
    loop = gateway._loop

    async def stalled_listener() -> tuple[jobs.Job, jobs.Listener]:
        job = await manager.get(job_id)
        return job, manager.subscribe(job)

    job, listener = asyncio.run_coroutine_threadsafe(stalled_listener(), loop).result(10)
    finished = wait_for(gateway.url, job_id, ("done", "failed", "cancelled"), timeout=120)
    assert finished["state"] == "done"
    assert listener.dropped and listener.queue.qsize() == 1  # only the "dropped" marker is held
    assert listener not in job.listeners


def test_json_listeners_never_hold_image_bytes(gateway):
    reply = submit(gateway.url, [encode(portrait(160, 200, seed=9))], candidates=2)
    job_id = reply.json()["id"]
    manager = gateway.gateway.jobs

    async def listen() -> list[jobs.Update]:
        listener = manager.subscribe(await manager.get(job_id))
        updates = []
        while not (update := await listener.get()).finished:
            updates.append(update)
        return updates

    updates = asyncio.run_coroutine_threadsafe(listen(), gateway._loop).result(120)
    assert updates and all(update.event is None for update in updates)
    assert any(update.photo and update.photo["candidates"] for update in updates)


def test_finished_jobs_leave_no_uploads_and_the_budget_evicts_the_oldest(detector, generator, upscaler, tmp_path):
    config = gateway_config(tmp_path, targets([detector]), targets([generator]), targets([upscaler]),
                            "--results-budget-mb", "2", "--result-ttl", "3600", "--job-lease", "1")
    gateway = GatewayThread(config)
    try:
        ids = []
        for seed in range(3):
            reply = restore(gateway.url, [("p.png", encode(portrait(300, 360, seed=seed), "PNG"))], candidates=2,
                            upscale=2)
            assert reply.status_code == 200, reply.text
            ids.append(reply.json()["id"])
            time.sleep(0.05)
        def size(folder: Path) -> int:
            return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

        # Each job keeps about 1.3 MB (an original, an overlay, two x2 candidates): three are over the 2 MB budget.
        assert 2 * size(tmp_path / ids[-1]) > 2 * 1024 * 1024 > size(tmp_path / ids[-1])
        budget = 2 * 1024 * 1024
        # Housekeeping runs every third of a second here; a few rounds bring the volume within its budget.
        deadline = time.monotonic() + 20
        while ((tmp_path / ids[0]).exists() or size(tmp_path) > budget) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not (tmp_path / ids[0]).exists()  # the oldest went first
        assert (tmp_path / ids[-1]).exists()  # the newest stays
        assert not any((tmp_path / job_id / jobs.UPLOADS).exists() for job_id in ids)
        assert size(tmp_path) <= budget
    finally:
        gateway.stop()
