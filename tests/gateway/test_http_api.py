"""The HTTP API end to end: real gateway, real services, real photos, over loopback."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster import GatewayThread, free_port, gateway_config, targets
from tests.gateway.test_decoding import png_header_only
from tests.photos import crumpled_page, encode, portrait, scratched


def restore(url: str, photos: list[tuple[str, bytes]], **options: object) -> requests.Response:
    files = [("photos", (name, data, "application/octet-stream")) for name, data in photos]
    return requests.post(f"{url}/v1/restorations", files=files, data={k: str(v) for k, v in options.items()}, timeout=600)


def fetch_image(url: str, path: str) -> np.ndarray:
    reply = requests.get(url + path, timeout=60)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(reply.content)))


def test_restores_a_damaged_photo_into_distinct_candidates(gateway):
    damaged, _ = scratched(portrait(), count=5)
    reply = restore(gateway.url, [("grandma.jpg", encode(damaged, quality=92))], candidates=3, upscale=2, seed=100)
    assert reply.status_code == 200, reply.text
    photo = reply.json()["photos"][0]
    assert photo["status"] == "done" and photo["filename"] == "grandma.jpg"
    assert photo["damage"]["coverage"]["scratch"] > 0.005
    assert photo["damage"]["width"] == 480 and photo["damage"]["height"] == 600
    # Seeds from the one asked for on: the three, the ranking's surplus, and at most three more when too few
    # keep the face; the best first.
    seeds = [c["seed"] for c in photo["candidates"]]
    assert len(set(seeds)) == 3 and all(100 <= seed < 100 + 3 + 2 + 3 for seed in seeds)
    overall = [c["scores"]["overall"] for c in photo["candidates"]]
    assert overall == sorted(overall, reverse=True)
    images = [fetch_image(gateway.url, c["url"]) for c in photo["candidates"]]
    assert all(image.shape == (1200, 960, 3) for image in images)
    assert len({image.tobytes() for image in images}) == 3
    # The overlay shows what the best candidate's fill replaced: the scratches found, in their colour, with
    # the pixels the fill grew them by; transparent elsewhere.
    assert photo["damage"]["mask_url"].endswith("/repaired.png")
    overlay = fetch_image(gateway.url, photo["damage"]["mask_url"])
    assert overlay.shape == (600, 480, 4)
    repaired = overlay[..., 3] == 255
    assert 0 < repaired.mean() < 0.5 and (overlay[repaired][:, :3] == (255, 59, 48)).all(axis=1).mean() > 0.9
    found = fetch_image(gateway.url, photo["damage"]["mask_url"].replace("/repaired.png", "/mask.png"))[..., 3] == 255
    assert (repaired | ~found).all() and repaired.sum() > 1.5 * found.sum()


def scraped(url: str, name: str) -> float:
    """A counter's value as Prometheus would scrape it from the gateway."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name)


def test_a_real_portrait_with_scratches_keeps_its_face(gateway):
    """face-api's own sample photo (MIT, tests/data/faces), scratched like an old print."""
    real = np.asarray(Image.open(Path(__file__).parents[1] / "data" / "faces" / "sample3.jpg").convert("RGB"))
    damaged, _ = scratched(real, count=6, seed=4)
    generated_before = scraped(gateway.url, "revive_gateway_generated_candidates_total")
    reply = restore(gateway.url, [("family.jpg", encode(damaged, quality=92))], candidates=2, seed=7)
    assert reply.status_code == 200, reply.text
    photo = reply.json()["photos"][0]
    assert photo["damage"]["faces"] >= 1
    assert photo["damage"]["coverage"]["scratch"] > 0.002
    # Faces make ranking meaningful, so the gateway generated a surplus and returned the best two.
    assert len(photo["candidates"]) == 2
    generated = scraped(gateway.url, "revive_gateway_generated_candidates_total") - generated_before
    assert generated >= 3  # 2 asked + 50% surplus, rounded up (more when too few kept the face)
    stored = list((gateway.gateway.config.results_dir / reply.json()["id"] / "0").glob("candidate-*.png"))
    assert len(stored) == 2  # ranked first, so the surplus was neither upscaled nor stored
    images = [fetch_image(gateway.url, c["url"]) for c in photo["candidates"]]
    assert images[0].shape == real.shape and not np.array_equal(images[0], images[1])


def test_a_clean_photo_and_a_crumpled_blank_page_get_a_clear_answer(gateway):
    """No damage at all, and nothing but damage: both are restored as asked and say what was found."""
    photos = [("clean.png", encode(portrait(), "PNG")), ("crumpled.png", encode(crumpled_page(), "PNG"))]
    reply = restore(gateway.url, photos, candidates=2, upscale=1)
    assert reply.status_code == 200, reply.text
    clean, crumpled = reply.json()["photos"]
    for photo in (clean, crumpled):
        assert photo["status"] == "done" and len(photo["candidates"]) == 2, photo
    assert sum(clean["damage"]["coverage"].get(kind, 0) for kind in ("scratch", "tear", "stain")) < 0.005
    assert crumpled["damage"]["coverage"]["scratch"] > 0.02  # the creases, as far as the detector sees them
    for candidate in crumpled["candidates"]:
        assert fetch_image(gateway.url, candidate["url"]).shape[:2] == (384, 384)


def test_upscale_is_clamped_to_the_4096_side_limit(gateway):
    reply = restore(gateway.url, [("wide.png", encode(portrait(1500, 1000), "PNG"))], candidates=1, upscale=4)
    assert reply.status_code == 200, reply.text
    photo = reply.json()["photos"][0]
    assert photo["upscale"] == 2
    assert (photo["candidates"][0]["width"], photo["candidates"][0]["height"]) == (3000, 2000)


def test_a_4096_photo_travels_the_whole_path(gateway):
    big = portrait(4096, 4096, seed=3)
    reply = restore(gateway.url, [("scan.jpg", encode(big, quality=90))], candidates=1, upscale=2)
    assert reply.status_code == 200, reply.text
    photo = reply.json()["photos"][0]
    assert photo["upscale"] == 1  # x2 of 4096 would pass the limit
    assert fetch_image(gateway.url, photo["candidates"][0]["url"]).shape == (4096, 4096, 3)


def test_one_bad_photo_does_not_fail_the_others(gateway):
    photos = [("good.jpg", encode(portrait(200, 240))), ("notes.txt", b"not a photo"), ("empty.jpg", b"")]
    reply = restore(gateway.url, photos, candidates=1)
    assert reply.status_code == 200
    good, text, empty = reply.json()["photos"]
    assert good["status"] == "done" and len(good["candidates"]) == 1
    assert text["status"] == "failed" and "not an image" in text["error"]["message"]
    assert empty["status"] == "failed" and "empty" in empty["error"]["message"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a but not really", "not an image"),
        (encode(portrait(200, 200))[:300], "truncated"),
        (b"", "empty"),
        (png_header_only(4097, 100), "at most 4096"),
        (png_header_only(200_000, 200_000), "4096"),
    ],
    ids=["not-an-image", "truncated", "zero-bytes", "side-over-4096", "decompression-bomb"],
)
def test_bad_photos_get_422_naming_the_problem(gateway, data, message):
    reply = restore(gateway.url, [("bad.png", data)])
    assert reply.status_code == 422
    body = reply.json()
    assert message in body["error"]["message"] and "bad.png" in body["error"]["message"]
    assert body["photos"][0]["error"]["code"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"candidates": 0}, "candidates must be between 1 and 8"),
        ({"candidates": 99}, "candidates must be between 1 and 8"),
        ({"upscale": 3}, "upscale must be one of (1, 2, 4)"),
        ({"age": 0}, "age"),
        ({"gender": "robot"}, "gender must be one of"),
        ({"hair_color": "green"}, "hair_color"),
        ({"candidates": "many"}, "whole number"),
        ({"seed": -1}, "seed"),
        ({"strength": 2}, "strength"),
        ({"colour": "on"}, "unknown option"),
    ],
)
def test_options_out_of_range_get_400(gateway, options, message):
    reply = restore(gateway.url, [("ok.jpg", encode(portrait(64, 64)))], **options)
    assert reply.status_code == 400
    assert message in reply.json()["error"]["message"]


def test_more_than_ten_photos_get_400(gateway):
    photo = encode(portrait(32, 32))
    reply = restore(gateway.url, [(f"p{i}.jpg", photo) for i in range(11)])
    assert reply.status_code == 400
    assert "at most 10" in reply.json()["error"]["message"]


def test_request_without_photos_or_not_multipart(gateway):
    only_options = requests.post(f"{gateway.url}/v1/restorations", files={"candidates": (None, "1")}, timeout=10)
    assert only_options.status_code == 400 and "no photos" in only_options.json()["error"]["message"]
    reply = requests.post(f"{gateway.url}/v1/restorations", json={"photos": []}, timeout=10)
    assert reply.status_code == 415 and "multipart" in reply.json()["error"]["message"]



def test_an_upstream_down_gives_503_naming_it_while_the_gateway_stays_ready(detector, upscaler, tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    config = gateway_config(tmp_path, targets([detector]), dead, targets([upscaler]), "--photo-deadline", "5", "--rpc-timeout", "5")
    gateway = GatewayThread(config)
    try:
        ready = requests.get(f"{gateway.url}/readyz", timeout=10)
        # The gateway still accepts jobs and serves results; the missing service is shown apart.
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["upstreams"] == {"detector": "SERVING", "generator": "NOT_SERVING", "upscaler": "SERVING"}
        reply = restore(gateway.url, [("a.jpg", encode(portrait(64, 64))), ("b.jpg", encode(portrait(64, 64)))])
        assert reply.status_code == 503
        assert "generator is unavailable" in reply.json()["error"]["message"]
        assert all(p["error"]["code"] == "UNAVAILABLE" for p in reply.json()["photos"])
        assert requests.get(f"{gateway.url}/healthz", timeout=10).status_code == 200
    finally:
        gateway.stop()


def test_a_file_over_the_upload_limit_gets_413(detector, generator, upscaler, tmp_path):
    config = gateway_config(tmp_path, targets([detector]), targets([generator]), targets([upscaler]), "--max-upload-mb", "1")
    gateway = GatewayThread(config)
    try:
        reply = restore(gateway.url, [("huge.bmp", b"BM" + b"\0" * (2 * 1024 * 1024))])
        assert reply.status_code == 413
        assert "huge.bmp" in reply.json()["error"]["message"]
    finally:
        gateway.stop()


def test_readyz_healthz_openapi_and_page(gateway):
    assert requests.get(f"{gateway.url}/healthz", timeout=10).json() == {"status": "alive"}
    ready = requests.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    spec = requests.get(f"{gateway.url}/v1/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.") and "/v1/restorations" in spec["paths"]
    page = requests.get(gateway.url + "/", timeout=10)
    assert page.status_code == 200 and 'id="files"' in page.text
    assert requests.get(f"{gateway.url}/v1/results/../../etc/passwd", timeout=10).status_code == 404
    assert requests.get(f"{gateway.url}/v1/results/{'0' * 32}/0/candidate-1.png", timeout=10).status_code == 404


def test_metrics_are_scraped_and_parsed(gateway):
    restore(gateway.url, [("m.jpg", encode(portrait(64, 64)))], candidates=2)
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests_total = {
        (s.labels["route"], s.labels["code"]): s.value for s in families["revive_gateway_http_requests"].samples
    }
    assert requests_total[("/v1/restorations", "200")] >= 1
    stages = {s.labels["stage"] for s in families["revive_gateway_stage_duration_seconds"].samples if "stage" in s.labels}
    assert {"decode", "detect", "generate", "store"} <= stages
    assert families["revive_gateway_candidates"].samples[0].value >= 2
    assert "revive_gateway_queue_depth" in families


def test_the_openapi_document_describes_what_the_gateway_answers(gateway):
    spec = requests.get(f"{gateway.url}/v1/openapi.json", timeout=10).json()
    reply = restore(gateway.url, [("p.jpg", encode(portrait(64, 64)))], candidates=1)
    job = requests.get(f"{gateway.url}/v1/jobs/{reply.json()['id']}", timeout=10).json()
    described = set(spec["components"]["schemas"]["Job"]["properties"])
    assert set(job) <= described, set(job) - described
    operations = [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)]
    api = [op for path, item in spec["paths"].items() for op in item.values()
           if isinstance(op, dict) and path.startswith("/v1/") and path != "/v1/openapi.json"]
    assert all("500" in op["responses"] for op in api)
    assert "202" in spec["paths"]["/v1/jobs/{job_id}"]["delete"]["responses"]
    assert "502" in spec["paths"]["/v1/restorations"]["post"]["responses"] and operations
