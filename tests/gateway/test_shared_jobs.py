"""Several gateways sharing jobs through the job database, as real processes: a replica killed
mid-job, a minute of clock skew between replicas, reads and cancels across replicas."""

from __future__ import annotations

import email.utils
import glob
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import GatewayProcess, GatewayThread, gateway_config, targets
from tests.gateway.test_jobs import submit, wait_for
from tests.photos import encode, portrait

FINISHED = ("done", "failed", "cancelled")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite shared by processes on one host, or a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


def counter(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name)


def slow_photos(count: int) -> list[bytes]:
    """Photos that keep a job running for several seconds with one photo in flight at a time."""
    return [encode(portrait(1400, 1400, seed=seed)) for seed in range(count)]


def test_a_killed_gateways_job_is_finished_by_another_exactly_once(database, detector, generator, upscaler, tmp_path):
    upstreams = (targets([detector]), targets([generator]), targets([upscaler]))
    flags = ("--job-database", database, "--job-lease", "2", "--max-photos-in-flight", "1")
    first = GatewayProcess(tmp_path / "results", *upstreams, *flags)
    second = GatewayProcess(tmp_path / "results", *upstreams, *flags)
    try:
        job = submit(first.url, slow_photos(4), candidates=2).json()
        deadline = time.monotonic() + 120
        while True:  # let it finish one photo, then kill its gateway mid-job
            seen = requests.get(f"{first.url}/v1/jobs/{job['id']}", timeout=10).json()
            if any(photo["status"] == "done" for photo in seen["photos"]):
                break
            assert time.monotonic() < deadline and seen["state"] in ("queued", "running"), seen
            time.sleep(0.1)
        first.kill()
        finished_before = {photo["index"]: photo for photo in seen["photos"] if photo["status"] == "done"}

        done = wait_for(second.url, job["id"], FINISHED, timeout=180)
        assert done["state"] == "done", done
        assert done["epoch"] == 2 and done["owner"] != seen["owner"]  # claimed once, by the survivor
        assert counter(second.url, "revive_gateway_jobs_adopted_total") == 1
        assert all(photo["status"] == "done" and len(photo["candidates"]) == 2 for photo in done["photos"])
        for index, photo in finished_before.items():  # finished photos were not run again
            assert done["photos"][index]["candidates"] == photo["candidates"]
        for photo in done["photos"]:
            for candidate in photo["candidates"]:
                assert requests.get(second.url + candidate["url"], timeout=10).status_code == 200
        assert not (tmp_path / "results" / job["id"] / "uploads").exists()
    finally:
        first.stop()
        second.stop()


def test_a_minute_of_clock_skew_between_gateways_never_runs_a_job_twice(postgres, detector, generator, upscaler,
                                                                         tmp_path):
    libfaketime = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not libfaketime:
        pytest.skip("no libfaketime (apt-get install faketime; .ci/run does)")
    upstreams = (targets([detector]), targets([generator]), targets([upscaler]))
    flags = ("--job-database", postgres.new_database(), "--job-lease", "3", "--max-photos-in-flight", "1")
    on_time = GatewayProcess(tmp_path / "results", *upstreams, *flags)
    # libfaketime preloaded into the gateway itself (the `faketime` wrapper would sit between it and SIGTERM).
    ahead = GatewayProcess(tmp_path / "results", *upstreams, *flags,
                           env={"LD_PRELOAD": libfaketime[-1], "FAKETIME": "+60s", "FAKETIME_DONT_RESET": "1"})
    try:
        date = requests.get(f"{ahead.url}/healthz", timeout=10).headers["Date"]
        assert email.utils.parsedate_to_datetime(date).timestamp() - time.time() > 50, "the clock was not skewed"
        # Each job outlives the lease several times over, so the leases are renewed while the other looks on.
        jobs = [submit(gateway.url, slow_photos(3), candidates=1).json() for gateway in (on_time, ahead, on_time)]
        for job in jobs:
            done = wait_for(ahead.url, job["id"], FINISHED, timeout=240)
            assert done["state"] == "done", done
            assert done["epoch"] == 1 and done["owner"] == job["owner"], "another gateway took a live job over"
        for gateway in (on_time, ahead):
            assert counter(gateway.url, "revive_gateway_jobs_adopted_total") == 0
            assert counter(gateway.url, "revive_gateway_jobs_fenced_total") == 0
    finally:
        on_time.stop()
        ahead.stop()


def test_another_replica_reads_and_cancels_a_job_it_does_not_run(detector, generator, upscaler, tmp_path):
    upstreams = (targets([detector]), targets([generator]), targets([upscaler]))
    flags = ("--job-lease", "5", "--max-photos-in-flight", "1")
    owner = GatewayThread(gateway_config(tmp_path, *upstreams, *flags))
    other = GatewayThread(gateway_config(tmp_path, *upstreams, *flags))
    try:
        job = submit(owner.url, slow_photos(4), candidates=2).json()
        seen = wait_for(other.url, job["id"], ("running",), timeout=60)
        assert seen["owner"] == job["owner"] == owner.gateway.jobs.instance
        assert requests.delete(f"{other.url}/v1/jobs/{job['id']}", timeout=10).status_code == 202
        cancelled = wait_for(other.url, job["id"], FINISHED, timeout=60)  # the owner acted on the request
        assert cancelled["state"] == "cancelled" and cancelled["epoch"] == 1
        assert requests.delete(f"{other.url}/v1/jobs/{job['id']}", timeout=10).status_code == 204
        assert requests.get(f"{owner.url}/v1/jobs/{job['id']}", timeout=10).status_code == 404
    finally:
        owner.stop()
        other.stop()
