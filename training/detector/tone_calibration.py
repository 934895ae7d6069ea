"""Where the black-and-white verdict should sit (services/detector/tone.py), from labelled synthetic prints.

Crops of the training photos, half made black-and-white or sepia by the
real-scan damage recipe (with its stains and foxing, which colour parts of
many black-and-white prints), half left in colour; a colour crop of a photo
that is grey already is no colour example and is skipped. Each is judged as
the learned detector judges a photo: over the pixels outside the damage it
found (`--models-dir`'s model). Prints the residual chroma's percentiles for
both, judged so and over the whole crop, and how many of each every candidate
threshold calls right. Never run on the held-out or the real photos.

python -m training.detector.tone_calibration [--samples 300]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from services.common.config import ServiceConfig
from services.common.inpainting import damage_union
from services.detector.engines.unet import UNetDetector
from services.detector.service import DEFINITION
from services.detector.tone import TINT_RESIDUAL_GREY, tint_residual
from training.common import sources
from training.detector.dataset import PHOTO_SETS, random_crop
from training.detector.synthetic_damage import REAL_SCAN, DamageSynthesizer

#: Below this residual a photo is grey whatever its label says (moon.png, camera.png).
GREY_ALREADY = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--data-dir", default=str(sources.DEFAULT_DIR))
    parser.add_argument("--models-dir", default=str(ServiceConfig.models_dir), help="the detector model whose damage is left out")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    detector = UNetDetector(DEFINITION.parse(["--models-dir", args.models_dir, "--threads", str(args.threads),
                                              "--providers", "cpu"]))
    photos = sources.load_all(PHOTO_SETS["wide"], Path(args.data_dir))
    synthesizers = {grey: DamageSynthesizer(replace(REAL_SCAN, p_grayscale=float(grey))) for grey in (True, False)}
    residuals: dict[str, dict[bool, list[float]]] = {how: {True: [], False: []} for how in ("intact", "whole")}
    for index in tqdm(range(args.samples), desc="prints", unit="print"):
        rng = np.random.default_rng([5, index])
        crop = random_crop(photos[index % len(photos)], 384, rng)
        grey = index % 2 == 0
        if not grey and tint_residual(crop) < GREY_ALREADY:
            continue
        damaged = synthesizers[grey](crop, rng).damaged
        found = damage_union(detector.detect(damaged).masks, damaged.shape[:2])
        residuals["intact"][grey].append(tint_residual(damaged, found))
        residuals["whole"][grey].append(tint_residual(damaged))
    for how, label in (("intact", "outside the damage found (as served)"), ("whole", "over the whole crop")):
        grey, colour = np.array(residuals[how][True]), np.array(residuals[how][False])
        print(f"\n{len(grey)} black-and-white and {len(colour)} colour crops; residual chroma (Cr/Cb levels) {label}")
        print("black-and-white percentiles 50/90/99:", np.percentile(grey, [50, 90, 99]).round(2))
        print("colour percentiles 1/5/10/50:        ", np.percentile(colour, [1, 5, 10, 50]).round(2))
        print("threshold  black-and-white called so  colour called colour")
        for threshold in (1.0, 1.25, 1.5, 2.0, 2.5, 3.0):
            mark = "  <- services/detector/tone.py" if threshold == TINT_RESIDUAL_GREY else ""
            print(f"{threshold:9.2f}  {np.mean(grey < threshold):24.3f}  {np.mean(colour >= threshold):20.3f}{mark}")


if __name__ == "__main__":
    main()
