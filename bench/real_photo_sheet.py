"""Before/after sheets of real scans, as a user gets them from `make run`.

Uploads every photo in a folder (default ../shared/real-photos) to the local
cluster with default options, keeps the top-ranked candidate and the repaired
damage mask, and writes per photo:
- `<name>.whole.png`: the scan, the damage overlay and the candidate, side by side;
- `<name>.crops.png`: 100% crops (no resampling) of the scan and the candidate at
  the places where the most damage was found, the first on the largest face.
Figures alone do not say whether a crack a person notices is left on a face:
these sheets are for looking.
Run: python -m bench.real_photo_sheet [--photos DIR] [--out var/real-sheets]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import requests
from PIL import Image

from bench.local_cluster import local_cluster
from services.common.runtime import RuntimeOptions
from services.vision.faces.analyzer import shared_face_analyzer

ROOT = Path(__file__).resolve().parents[1]
CROP = 256
WHOLE_HEIGHT = 640


def fetch(base: str, url: str) -> np.ndarray:
    reply = requests.get(url if url.startswith("http") else base + url, timeout=120)
    reply.raise_for_status()
    return np.asarray(Image.open(io.BytesIO(reply.content)).convert("RGB"))


def restore(base: str, path: Path, candidates: int) -> dict:
    started = time.perf_counter()
    with path.open("rb") as photo:
        reply = requests.post(f"{base}/v1/restorations", files=[("photos", (path.name, photo, "image/png"))],
                              data={"candidates": str(candidates), "upscale": "1"}, timeout=900)
    reply.raise_for_status()
    body = reply.json()["photos"][0]
    body["seconds"] = time.perf_counter() - started
    return body


def crop_centres(mask: np.ndarray, faces: list[tuple[int, int, int, int]], count: int) -> list[tuple[int, int]]:
    """Where to look: the largest face first, then the windows holding the most damage."""
    height, width = mask.shape
    centres = [(x + w // 2, y + h // 2) for x, y, w, h in sorted(faces, key=lambda f: -f[2] * f[3])[:1]]
    density = cv2.boxFilter(mask.astype(np.float32), -1, (CROP, CROP))
    while len(centres) < count:
        y, x = np.unravel_index(int(np.argmax(density)), density.shape)
        if density[y, x] <= 0:
            break
        centres.append((int(x), int(y)))
        density[max(0, y - CROP):y + CROP, max(0, x - CROP):x + CROP] = 0
    return [(min(max(x, CROP // 2), max(width - CROP // 2, CROP // 2)),
             min(max(y, CROP // 2), max(height - CROP // 2, CROP // 2))) for x, y in centres]


def window(image: np.ndarray, centre: tuple[int, int]) -> np.ndarray:
    x, y = centre
    top, left = max(0, y - CROP // 2), max(0, x - CROP // 2)
    tile = np.full((CROP, CROP, 3), 255, np.uint8)
    part = image[top:top + CROP, left:left + CROP]
    tile[:part.shape[0], :part.shape[1]] = part
    return tile


def fitted(image: np.ndarray) -> np.ndarray:
    scale = WHOLE_HEIGHT / image.shape[0]
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), WHOLE_HEIGHT), interpolation=cv2.INTER_AREA)


def faces_of(original: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The face boxes the detector service's analyser finds (in this process, to place the crops)."""
    analyzer = shared_face_analyzer(ROOT / "models", RuntimeOptions(providers=("cpu",)))
    return [(round(face.box.x), round(face.box.y), round(face.box.width), round(face.box.height))
            for face in analyzer.analyze(original)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "real-photos")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "real-sheets")
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--crops", type=int, default=4)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    with tempfile.TemporaryDirectory() as results, local_cluster(results) as base:
        for path in paths:
            body = restore(base, path, args.candidates)
            original = np.asarray(Image.open(path).convert("RGB"))
            best = fetch(base, body["candidates"][0]["url"])
            overlay = fetch(base, body["damage"]["mask_url"]) if body["damage"].get("mask_url") else original
            mask = np.any(np.abs(overlay.astype(np.int16) - original.astype(np.int16)) > 24, axis=2)
            Image.fromarray(np.hstack([fitted(original), fitted(overlay), fitted(best)])).save(args.out / f"{path.stem}.whole.png")
            centres = crop_centres(mask, faces_of(original), args.crops)
            rows = [np.hstack([window(original, c), np.full((CROP, 8, 3), 255, np.uint8), window(best, c)]) for c in centres]
            Image.fromarray(np.vstack(rows)).save(args.out / f"{path.stem}.crops.png")
            coverage = {k: round(v, 4) for k, v in body["damage"]["coverage"].items()}
            print(f"{path.name}: {body['seconds']:.1f} s, coverage {coverage}, faces {body['damage'].get('faces', 0)}, "
                  f"identity {body['candidates'][0]['scores'].get('identity_similarity')}", flush=True)
    print(f"sheets in {args.out}")


if __name__ == "__main__":
    main()
