"""Defects a reviewer found, each fixed and kept fixed: bad bodies are 4xx, slow uploads are cut off,
bounds are the real ones, a cancelled job's photos say so, and seeds are numbers."""

from __future__ import annotations

import socket
import time

import requests

from tests.cluster import GatewayThread, gateway_config, targets
from tests.gateway.test_http_api import restore
from tests.gateway.test_jobs import submit, wait_for
from tests.photos import encode, portrait


def test_a_broken_multipart_body_is_a_400_not_a_500(gateway):
    for body, content_type in ((b"", "multipart/form-data; boundary=xyz"),
                               (b"--xyz\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"a.jpg\"\r\n\r\nabc",
                                "multipart/form-data; boundary=xyz"),
                               (b"garbage without any boundary", "multipart/form-data; boundary=xyz")):
        reply = requests.post(f"{gateway.url}/v1/restorations", data=body, headers={"Content-Type": content_type},
                              timeout=30)
        assert 400 <= reply.status_code < 500, (body, reply.status_code, reply.text)
        assert reply.json()["error"]["message"]


def test_ages_and_counts_out_of_range_name_their_real_bounds(gateway):
    photo = [("p.jpg", encode(portrait(64, 64)))]
    for field, value, words in (("age", "-1", "between 1 and 100"), ("age", "101", "between 1 and 100"),
                                ("candidates", "0", "between 1 and 8")):
        reply = restore(gateway.url, photo, **{field: value})
        assert reply.status_code == 400 and words in reply.json()["error"]["message"], reply.text


def test_thousands_of_unknown_fields_are_refused_early_and_not_echoed(gateway):
    fields = {f"junk{i}": "x" for i in range(5000)}
    files = [("photos", ("p.jpg", encode(portrait(64, 64)), "image/jpeg"))]
    start = time.monotonic()
    reply = requests.post(f"{gateway.url}/v1/restorations", data=fields, files=files, timeout=60)
    assert reply.status_code == 400 and "too many form fields" in reply.json()["error"]["message"]
    assert len(reply.content) < 2000 and time.monotonic() - start < 10


def test_an_upload_that_trickles_is_cut_off(gateway, monkeypatch):
    from gateway import http_api
    monkeypatch.setattr(http_api, "UPLOAD_IDLE_SECONDS", 1.0)
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        head = (f"POST /v1/restorations HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"photos\"; "
                f"filename=\"slow.jpg\"\r\n\r\n")
        connection.sendall(head.encode())
        start = time.monotonic()
        connection.sendall(b"x")
        time.sleep(2.5)  # a pause longer than the idle limit
        answer = connection.recv(4096).decode(errors="replace")
    assert " 408 " in answer.splitlines()[0] and time.monotonic() - start < 10


def test_a_cancelled_jobs_unfinished_photos_say_cancelled(gateway):
    reply = submit(gateway.url, [encode(portrait(200, 240, seed=i)) for i in range(6)], candidates=8, upscale=2)
    job_id = reply.json()["id"]
    assert requests.delete(f"{gateway.url}/v1/jobs/{job_id}", timeout=10).status_code in (200, 202)
    job = wait_for(gateway.url, job_id, ("cancelled",), timeout=30)
    assert all(photo["status"] in ("done", "cancelled") for photo in job["photos"]), job["photos"]
    assert any(photo["status"] == "cancelled" and photo["error"]["code"] == "CANCELLED" for photo in job["photos"])


def test_a_job_cancelled_while_queued_says_so_for_every_photo(detector, generator, upscaler, tmp_path):
    """Cancelled before a worker took it: read back from the database (by the next gateway, or by this one once
    the job has ended), each photo must say cancelled too; they said queued, as only an RPC's failure had ever
    written a cancelled photo."""
    upstreams = (targets([detector]), targets([generator]), targets([upscaler]))
    first = GatewayThread(gateway_config(tmp_path, *upstreams, "--job-workers", "1"))
    try:
        submit(first.url, [encode(portrait(200, 240, seed=1))], candidates=4)  # keeps the one worker busy
        queued = submit(first.url, [encode(portrait(96, 96, seed=i)) for i in range(3)], candidates=1).json()["id"]
        assert requests.delete(f"{first.url}/v1/jobs/{queued}", timeout=10).status_code in (200, 202)
    finally:
        first.stop()  # waits for the writes under way
    second = GatewayThread(gateway_config(tmp_path, *upstreams, "--job-workers", "1"))
    try:
        job = requests.get(f"{second.url}/v1/jobs/{queued}", timeout=10).json()
        assert job["state"] == "cancelled"
        assert [photo["status"] for photo in job["photos"]] == ["cancelled"] * 3, job["photos"]
    finally:
        second.stop()


def test_seeds_are_numbers_in_json(gateway):
    reply = restore(gateway.url, [("p.jpg", encode(portrait(96, 96)))], candidates=1, seed=18446744073709551000)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["options"]["seed"] == 18446744073709551000
    assert isinstance(body["photos"][0]["candidates"][0]["seed"], int)
