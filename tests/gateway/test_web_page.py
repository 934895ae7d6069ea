"""The web page in a real headless Chromium: upload, watch progress, see candidates."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.photos import encode, portrait, scratched

CHROMIUM = os.environ.get("REVIVE_CHROMIUM", "/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by requirements/dev.txt")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)", allow_module_level=True)

#: Flags for a sandboxed, offline CI machine: no first-run, no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_upload_two_photos_and_see_their_candidates(gateway, tmp_path: Path):
    photos = []
    for index, (width, height) in enumerate(((360, 450), (300, 300))):
        path = tmp_path / f"old-{index}.jpg"
        path.write_bytes(encode(scratched(portrait(width, height, seed=index), count=3)[0]))
        photos.append(str(path))
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(gateway.url + "/")
        page.set_input_files("#files", photos)
        assert page.locator("#chosen li").count() == 2
        page.fill("input[name=candidates]", "3")
        page.select_option("select[name=upscale]", "2")
        page.click("#submit")
        page.wait_for_selector(".finished", timeout=120_000)
        assert page.locator(".photo.done").count() == 2
        assert page.locator(".finished").inner_text() == "All 2 photos restored."
        candidates = page.locator(".candidate img")
        assert candidates.count() == 6
        page.wait_for_function("Array.from(document.querySelectorAll('.candidate img')).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator(".candidate img").first.evaluate("i => i.naturalWidth") == 720  # 360 upscaled x2
        assert page.locator(".comparison .slider").count() == 2
        assert "scratch" in page.locator(".damage").first.inner_text()
        overlay = page.locator(".comparison .overlay").first
        assert not overlay.is_visible()  # the repair is shown when asked for, and hidden again
        page.locator(".comparison input[type=checkbox]").first.check()
        assert overlay.is_visible()
        page.locator(".comparison .opacity").first.fill("40")
        assert overlay.evaluate("i => i.style.opacity") == "0.4"
        page.locator(".comparison input[type=checkbox]").first.uncheck()
        assert not overlay.is_visible()
        assert "scratch" in page.locator(".legend").first.inner_text()
        # No raw seeds or meaningless scores in what a person reads.
        assert "seed" not in page.locator(".candidate figcaption").first.inner_text()
        # A reload (or the shared link) shows the same job again, with its "before" from the gateway.
        page.reload()
        page.wait_for_selector(".finished", timeout=30_000)
        assert page.locator(".photo.done").count() == 2 and page.locator(".candidate img").count() == 6
        assert "/original.jpg" in page.locator(".comparison img.before").first.get_attribute("src")
        shot = tmp_path / "revive-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("REVIVE_SCREENSHOT"):
            shutil.copy(shot, os.environ["REVIVE_SCREENSHOT"])
        browser.close()


def test_a_failed_photo_is_explained_in_words(gateway, tmp_path: Path):
    good, bad = tmp_path / "good.jpg", tmp_path / "broken.jpg"
    good.write_bytes(encode(portrait(200, 240, seed=3)))
    bad.write_bytes(b"\xff\xd8 this is not really a JPEG")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(gateway.url + "/")
        page.set_input_files("#files", [str(good), str(bad)])
        page.fill("input[name=candidates]", "1")
        page.click("#submit")
        page.wait_for_selector(".finished", timeout=120_000)
        assert page.locator(".finished").inner_text().startswith("1 photo of 2 restored; 1 photo could not be")
        failed = page.locator(".photo.failed")
        assert failed.count() == 1
        assert "could not be used as a photo" in failed.inner_text()
        assert "INVALID_ARGUMENT" not in failed.inner_text()
        browser.close()


def test_the_page_asks_for_a_key_once_and_keeps_it(detector, generator, upscaler, tmp_path: Path):
    from tests.cluster import GatewayThread, gateway_config, targets
    from tests.gateway.test_auth import new_key

    keys = tmp_path / "keys.json"
    secret = new_key(keys, "web")
    gateway = GatewayThread(gateway_config(tmp_path / "results", targets([detector]), targets([generator]),
                                           targets([upscaler]), "--api-keys-file", str(keys)))
    photo = tmp_path / "p.jpg"
    photo.write_bytes(encode(portrait(160, 200, seed=4)))
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(gateway.url + "/")
            page.set_input_files("#files", [str(photo)])
            page.fill("input[name=candidates]", "1")
            page.click("#submit")
            page.wait_for_selector("input.key", timeout=30_000)
            page.fill("input.key", "rv_wrong")
            page.click(".login button")
            page.wait_for_selector("text=That key is not known here")
            page.fill("input.key", secret)
            page.click(".login button")
            page.wait_for_selector(".finished", timeout=120_000)
            assert page.locator(".photo.done").count() == 1
            page.wait_for_function("Array.from(document.querySelectorAll('.candidate img')).every(i => i.naturalWidth > 0)")
            page.reload()  # the cookie keeps the key: no second question
            page.wait_for_selector(".finished", timeout=30_000)
            assert page.locator("input.key").count() == 0
            browser.close()
    finally:
        gateway.stop()
