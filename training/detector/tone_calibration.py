"""Where the black-and-white verdict should sit (services/detector/tone.py), from labelled synthetic prints.

Crops of the training photos made into four kinds of print, then aged by the
real-scan damage recipe (with its stains and foxing, which colour parts of
many black-and-white prints):
- black-and-white: grey or toned sepia (the recipe's own greyscale step);
- colour: left as they are;
- early colour: an autochrome's or a faded colour print's colour, its chroma
  muted to a quarter to three fifths and given a warm or green cast;
- hand-coloured: a grey print with colour painted on a few broad regions.
A colour crop of a photo that is grey already is no colour example and is
skipped. Each is judged as the learned detector judges a photo: over the
pixels outside the damage it found (`--models-dir`'s model). For each
percentile of the pixels' residual chroma the verdict could be taken at,
prints how each kind spreads and how many of each every candidate threshold
calls right. Never run on the held-out or the real photos.

python -m training.detector.tone_calibration [--samples 400]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from services.common.config import ServiceConfig
from services.common.inpainting import damage_union
from services.detector.engines.unet import UNetDetector
from services.detector.service import DEFINITION
from services.detector.tone import grayscale_score, residual_chroma, tint_residual
from training.common import sources
from training.detector.dataset import PHOTO_SETS, random_crop
from training.detector.synthetic_damage import REAL_SCAN, DamageSynthesizer

#: Below this residual a photo is grey whatever its label says (moon.png, camera.png).
GREY_ALREADY = 1.0
#: Judgements compared: (pixels judged, percentile of their residual chroma); the thresholds tried at each.
JUDGEMENTS = (("intact", 50), ("intact", 75), ("intact", 90), ("whole", 50), ("whole", 75))
THRESHOLDS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
KINDS = ("black-and-white", "colour", "early colour", "hand-coloured")


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def early_colour(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An autochrome or a faded colour print: the crop's chroma muted to 25-60% under a warm or green cast."""
    lab = _lab(crop)
    lab[..., 1:] *= rng.uniform(0.25, 0.6)
    lab[..., 1] += rng.uniform(-5.0, 4.0)
    lab[..., 2] += rng.uniform(0.0, 12.0)
    return _rgb(lab)


def hand_coloured(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey print with two or three broad regions painted, each its own hue at a low chroma."""
    lab = _lab(crop)
    lab[..., 1:] = 0.0
    height, width = crop.shape[:2]
    for _ in range(rng.integers(2, 4)):
        field = cv2.resize(rng.standard_normal((4, 4)).astype(np.float32), (width, height),
                           interpolation=cv2.INTER_CUBIC)
        region = cv2.GaussianBlur((field > np.quantile(field, rng.uniform(0.6, 0.85))).astype(np.float32), (0, 0), 3)
        hue, chroma = rng.uniform(0, 2 * np.pi), rng.uniform(8.0, 20.0)
        lab[..., 1] += region * chroma * np.cos(hue)
        lab[..., 2] += region * chroma * np.sin(hue)
    return _rgb(lab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--data-dir", default=str(sources.DEFAULT_DIR))
    parser.add_argument("--models-dir", default=str(ServiceConfig.models_dir), help="the detector model whose damage is left out")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    detector = UNetDetector(DEFINITION.parse(["--models-dir", args.models_dir, "--threads", str(args.threads),
                                              "--providers", "cpu"]))
    photos = sources.load_all(PHOTO_SETS["wide"], Path(args.data_dir))
    grey_print = DamageSynthesizer(replace(REAL_SCAN, p_grayscale=1.0))
    colour_print = DamageSynthesizer(replace(REAL_SCAN, p_grayscale=0.0))
    makers: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray] | None] = {
        "black-and-white": None, "colour": None, "early colour": early_colour, "hand-coloured": hand_coloured}
    judged: dict[str, list[list[float]]] = {kind: [] for kind in KINDS}
    served: dict[str, list[bool]] = {kind: [] for kind in KINDS}
    for index in tqdm(range(args.samples), desc="prints", unit="print"):
        rng = np.random.default_rng([5, index])
        crop = random_crop(photos[index % len(photos)], 384, rng)
        kind = KINDS[index % len(KINDS)]
        if kind in ("colour", "early colour") and tint_residual(crop) < GREY_ALREADY:
            continue
        make = makers[kind]
        print_ = make(crop, rng) if make else crop
        damaged = (grey_print if kind == "black-and-white" else colour_print)(print_, rng).damaged
        found = damage_union(detector.detect(damaged).masks, damaged.shape[:2])
        residuals = {"intact": residual_chroma(damaged, found), "whole": residual_chroma(damaged)}
        judged[kind].append([float(np.percentile(residuals[pixels], q)) for pixels, q in JUDGEMENTS])
        served[kind].append(grayscale_score(damaged, found) >= 0.5)
    print("\n" + ", ".join(f"{len(judged[kind])} {kind}" for kind in KINDS) + " prints; called right by the served "
          "verdict (services/detector/tone.py): " + ", ".join(
              f"{kind} {np.mean(served[kind]) if kind == 'black-and-white' else 1 - np.mean(served[kind]):.2f}"
              for kind in KINDS))
    for column, (pixels, percentile) in enumerate(JUDGEMENTS):
        print(f"\nThe {percentile}th percentile of the residual chroma (Cr/Cb levels) over the "
              + ("pixels outside the damage found" if pixels == "intact" else "whole print"))
        for kind in KINDS:
            values = np.array([row[column] for row in judged[kind]])
            print(f"  {kind:16} percentiles 1/10/50/90/99: {np.percentile(values, [1, 10, 50, 90, 99]).round(2)}")
        print("  threshold  " + "  ".join(f"{kind:>16}" for kind in KINDS) + "   (share called right)")
        for threshold in THRESHOLDS:
            right = []
            for kind in KINDS:
                values = np.array([row[column] for row in judged[kind]])
                right.append(np.mean(values < threshold) if kind == "black-and-white" else np.mean(values >= threshold))
            print(f"  {threshold:9.2f}  " + "  ".join(f"{value:16.3f}" for value in right))


if __name__ == "__main__":
    main()
