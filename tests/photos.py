"""Photos the tests make: a synthetic portrait, and old-photo damage on top of it."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def portrait(width: int = 480, height: int = 600, seed: int = 0) -> np.ndarray:
    """A smooth, face-like RGB picture: backdrop gradient, head, eyes, mouth, grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([90 + 60 * x / width, 80 + 50 * y / height, 70 + 30 * (x + y) / (width + height)], -1)
    centre = (width // 2, int(height * 0.45))
    axes = (int(width * 0.22), int(height * 0.28))
    cv2.ellipse(image, centre, axes, 0, 0, 360, (200, 160, 130), -1)
    for dx in (-0.08, 0.08):
        cv2.circle(image, (int(centre[0] + dx * width), int(centre[1] - 0.05 * height)), max(2, width // 40), (40, 30, 30), -1)
    cv2.ellipse(image, (centre[0], int(centre[1] + 0.12 * height)), (width // 12, height // 60 + 1), 0, 0, 180, (120, 50, 50), -1)
    image = cv2.GaussianBlur(image, (0, 0), 1.5) + rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def scratched(rgb: np.ndarray, count: int = 4, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Bright thin scratches drawn across the photo, and their true mask."""
    rng = np.random.default_rng(seed)
    damaged, mask = rgb.copy(), np.zeros(rgb.shape[:2], np.uint8)
    height, width = mask.shape
    for _ in range(count):
        start = (int(rng.integers(0, width)), int(rng.integers(0, height // 3)))
        end = (int(rng.integers(0, width)), int(rng.integers(2 * height // 3, height)))
        cv2.line(damaged, start, end, (245, 245, 240), 2)
        cv2.line(mask, start, end, 255, 2)
    return damaged, mask


def crumpled_page(side: int = 384, seed: int = 3) -> np.ndarray:
    """A photo of a crumpled blank page: creases everywhere (a dark line with a bright one beside it) and
    uneven shading over cream paper, no picture at all."""
    rng = np.random.default_rng(seed)
    page = np.full((side, side, 3), (232, 226, 210), np.float32)
    for _ in range(40):
        points = (np.cumsum(rng.normal(0, side / 10, (6, 2)), axis=0) + rng.uniform(0, side, 2)).astype(np.int32)
        cv2.polylines(page, [points.reshape(-1, 1, 2)], False, (150, 144, 130), 2)
        cv2.polylines(page, [points.reshape(-1, 1, 2) + 2], False, (252, 250, 244), 2)
    shade = cv2.GaussianBlur(rng.normal(0, 25, (side, side)).astype(np.float32), (0, 0), side / 12)
    page += shade[..., None] * 3 + rng.normal(0, 4, page.shape)
    return np.clip(page, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **params)
    return buffer.getvalue()
