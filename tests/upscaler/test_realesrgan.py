"""The realesrgan engine: no seams however it is tiled (even below its receptive field), x2 from x4,
content kept, and grain and JPEG blocks cleaned where bicubic keeps them."""

from __future__ import annotations

import cv2
import numpy as np

from services.upscaler.engines.realesrgan import RealEsrganUpscaler
from tests.photos import portrait


def test_tiles_leave_no_seam_even_when_the_overlap_asked_is_too_small():
    photo = portrait(width=150, height=120, seed=3)
    tiled = RealEsrganUpscaler(tile=48, overlap=8, batch=2)  # raised to the model's receptive field
    whole = RealEsrganUpscaler(tile=1024, overlap=32)
    for factor in (2, 4):
        a, b = tiled.upscale(photo, factor), whole.upscale(photo, factor)
        assert a.shape == b.shape == (120 * factor, 150 * factor, 3)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, f"x{factor}"


def test_it_keeps_the_content_and_cleans_a_degraded_scan():
    clean = portrait(width=320, height=256, seed=5)
    small = cv2.resize(clean, (80, 64), interpolation=cv2.INTER_AREA)
    noisy = np.clip(small + np.random.default_rng(2).normal(0, 6, small.shape), 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 40])
    degraded = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    restored = RealEsrganUpscaler().upscale(degraded, 4).astype(np.float32)
    bicubic = cv2.resize(degraded, (320, 256), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    # Content kept: averaged back down, it is the input again.
    assert np.abs(restored.reshape(64, 4, 80, 4, 3).mean(axis=(1, 3)) - degraded).mean() < 6
    # Cleaner: closer to the clean photo than bicubic's enlargement of the same degraded input.
    error = lambda guess: float(np.abs(guess - clean.astype(np.float32)).mean())  # noqa: E731
    assert error(restored) < error(bicubic)
