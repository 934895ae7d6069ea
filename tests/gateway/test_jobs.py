"""Jobs: 202 and polling, server-sent events, cancellation down to the RPCs,
surviving a gateway restart, expiry, and backpressure."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import GatewayThread, gateway_config, targets
from tests.photos import encode, portrait, scratched


def submit(url: str, photos: list[bytes], **options: object) -> requests.Response:
    files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return requests.post(f"{url}/v1/jobs", files=files, data={k: str(v) for k, v in options.items()}, timeout=60)


def wait_for(url: str, job_id: str, states: tuple[str, ...], timeout: float = 300,
             headers: dict[str, str] | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10, headers=headers).json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}: {job}")


def sse_events(url: str, job_id: str) -> list[tuple[str, dict]]:
    events, kind = [], None
    with requests.get(f"{url}/v1/jobs/{job_id}/events", stream=True, timeout=300) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                kind = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: "):])))
                if kind == "end":
                    break
    return events


def test_job_is_accepted_then_streams_progress_and_finishes(gateway):
    damaged, _ = scratched(portrait(), count=3)
    reply = submit(gateway.url, [encode(damaged), encode(portrait(200, 200))], candidates=2, seed=9)
    assert reply.status_code == 202
    job = reply.json()
    assert reply.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and len(job["photos"]) == 2
    events = sse_events(gateway.url, job["id"])
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "job" and kinds[-1] == "end"
    assert "photo" in kinds  # live updates between the snapshot and the end
    final = events[-1][1]
    assert all(photo["progress"] == {"decode": 1.0, "detect": 1.0, "generate": 1.0} for photo in final["photos"])
    assert final["state"] == "done"
    assert all(len(photo["candidates"]) == 2 for photo in final["photos"])
    assert requests.get(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10).json()["state"] == "done"
    assert requests.delete(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10).status_code == 204
    assert requests.get(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10).status_code == 404


def generate_metric(generator, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{generator.metrics_port}/metrics", timeout=5).read().decode()
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == name and s.labels.get("grpc_method") == "Generate" and labels.items() <= s.labels.items()
    )


def test_cancelling_a_running_job_cancels_its_upstream_rpcs(gateway, generator):
    before = generate_metric(generator, "grpc_server_handled_total", grpc_code="CANCELLED")
    job = submit(gateway.url, [encode(portrait(3000, 3000, seed=4), quality=90)], candidates=6).json()
    deadline = time.monotonic() + 120
    while generate_metric(generator, "grpc_server_in_flight_rpcs") < 1:  # the generate calls are out
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = requests.delete(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10).json()
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 120
    while generate_metric(generator, "grpc_server_handled_total", grpc_code="CANCELLED") <= before:
        assert time.monotonic() < deadline, "the generator never saw the cancellation"
        time.sleep(0.2)
    assert requests.get(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10).json()["state"] == "cancelled"


def test_a_restarted_gateway_resumes_accepted_jobs(detector, generator, upscaler, tmp_path):
    upstreams = (targets([detector]), targets([generator]), targets([upscaler]))
    first = GatewayThread(gateway_config(tmp_path, *upstreams, "--job-workers", "1"))
    busy = submit(first.url, [encode(portrait(2000, 2000, seed=5))], candidates=3).json()
    waiting = submit(first.url, [encode(portrait(300, 300))], candidates=2).json()
    orphan = submit(first.url, [encode(portrait(300, 300))], candidates=1).json()
    first.stop()  # mid-run: nothing finished, all three stay on disk
    shutil.rmtree(tmp_path / orphan["id"] / "uploads")
    second = GatewayThread(gateway_config(tmp_path, *upstreams, "--job-workers", "2"))
    try:
        for job in (busy, waiting):
            finished = wait_for(second.url, job["id"], ("done", "failed", "cancelled"))
            assert finished["state"] == "done", finished
        assert len(wait_for(second.url, busy["id"], ("done",))["photos"][0]["candidates"]) == 3
        lost = wait_for(second.url, orphan["id"], ("failed", "done"))
        assert lost["state"] == "failed" and "uploads" in lost["reason"]
    finally:
        second.stop()


def test_finished_jobs_expire(detector, generator, upscaler, tmp_path):
    config = gateway_config(tmp_path, targets([detector]), targets([generator]), targets([upscaler]), "--result-ttl", "1")
    gateway = GatewayThread(config)
    try:
        job = submit(gateway.url, [encode(portrait(100, 100))], candidates=1).json()
        url = wait_for(gateway.url, job["id"], ("done",))["photos"][0]["candidates"][0]["url"]
        deadline = time.monotonic() + 15
        while requests.get(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10).status_code != 404:
            assert time.monotonic() < deadline, "the job never expired"
            time.sleep(0.25)
        assert requests.get(gateway.url + url, timeout=10).status_code == 404
        assert not (tmp_path / job["id"]).exists()
    finally:
        gateway.stop()


def test_a_full_queue_answers_429_with_retry_after(detector, generator, upscaler, tmp_path):
    config = gateway_config(tmp_path, targets([detector]), targets([generator]), targets([upscaler]),
                            "--job-workers", "1", "--max-queued-jobs", "1")
    gateway = GatewayThread(config)
    try:
        photo = encode(portrait(1500, 1500, seed=6))
        running = submit(gateway.url, [photo], candidates=4).json()
        time.sleep(0.3)
        queued = submit(gateway.url, [photo], candidates=4)
        refused = submit(gateway.url, [photo], candidates=4)
        assert queued.status_code == 202
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "queue is full" in refused.json()["error"]["message"]
        for job in (running, queued.json()):
            requests.delete(f"{gateway.url}/v1/jobs/{job['id']}", timeout=10)
    finally:
        gateway.stop()
