"""Check the ONNX person segmentation against mediapipe's own SelfieSegmentation.

    python -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install --no-deps mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
    /tmp/mpvenv/bin/pip install "numpy<2" "protobuf>=4.25.3,<5" absl-py attrs "flatbuffers>=2.0" \\
        "opencv-contrib-python<4.11" matplotlib
    python -m training.person.reference --mediapipe-python /tmp/mpvenv/bin/python [--record]

mediapipe 0.10.14 needs numpy 1 and protobuf 4, which the project's
environment does not have, so it runs in its own interpreter (jax, which the
wheel lists, is not needed by the solutions API): the photos are decoded once
here and handed over in an .npz, and the masks of
`SelfieSegmentation(model_selection=0)` come back the same way. Two
comparisons per photo: "photo", `PersonSegmenter.mask` at the photo's own size
against mediapipe's segmentation_mask (the whole pipeline, both resizes
included), and "256", the photo area-resized to 256x256 first, where neither
side resizes (the network alone). The figures are max and mean |ours -
mediapipe| of the probabilities; the max must stay within TOLERANCE.
--record writes them into models/person/manifest.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.common.runtime import RuntimeOptions
from services.vision.person import MODEL_FILE, SIDE, PersonSegmenter
from training.person.convert import record_check

DEFAULT_IMAGES = [Path("tests/data/faces") / f"sample{n}.jpg" for n in (1, 3, 6)]
MODELS = Path("models")
#: Largest |ours - mediapipe| allowed on a probability, anywhere in a photo.
TOLERANCE = 0.02

#: Runs under the mediapipe interpreter: argv[1] = photos .npz in, argv[2] = masks .npz out.
MEDIAPIPE_SCRIPT = """
import sys
import mediapipe as mp
import numpy as np

photos, masks = np.load(sys.argv[1]), {}
for name in photos.files:
    # A fresh graph per photo: nothing carries over from one photo to the next.
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
        masks[name] = segmenter.process(photos[name]).segmentation_mask
np.savez(sys.argv[2], version=np.array(mp.__version__), **masks)
"""


def load_photos(paths: list[Path]) -> dict[str, np.ndarray]:
    """Each photo (uint8 RGB) under its stem, and area-resized to SIDE x SIDE under "<stem>@256"."""
    photos = {}
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        photos[path.stem] = rgb
        photos[f"{path.stem}@{SIDE}"] = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return photos


def mediapipe_masks(python: str, photos: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
    """mediapipe's version and its segmentation_mask for every photo, run under `python`."""
    with tempfile.TemporaryDirectory() as scratch:
        sent, received = Path(scratch) / "photos.npz", Path(scratch) / "masks.npz"
        np.savez(sent, **photos)
        subprocess.run([python, "-c", MEDIAPIPE_SCRIPT, str(sent), str(received)], check=True)
        with np.load(received) as masks:
            return str(masks["version"]), {name: masks[name] for name in photos}


def compare(segmenter: PersonSegmenter, photos: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict:
    """{"photo" | "256": {stem: {max_abs_diff, mean_abs_diff}}}."""
    figures: dict[str, dict] = {"photo": {}, str(SIDE): {}}
    for name, rgb in photos.items():
        stem, _, resized = name.partition("@")
        difference = np.abs(segmenter.mask(rgb) - theirs[name])
        figures[resized or "photo"][stem] = {"max_abs_diff": float(difference.max()),
                                             "mean_abs_diff": float(difference.mean())}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mediapipe-python", required=True, help="an interpreter with mediapipe 0.10.14 installed")
    parser.add_argument("--images", type=Path, nargs="+", default=DEFAULT_IMAGES)
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--record", action="store_true", help="write the figures into models/person/manifest.json")
    args = parser.parse_args(argv)
    setup_logging("warning")

    photos = load_photos(args.images)
    version, theirs = mediapipe_masks(args.mediapipe_python, photos)
    segmenter = PersonSegmenter(args.models / MODEL_FILE, RuntimeOptions(providers=("cpu",), threads=1))
    figures = compare(segmenter, photos, theirs)
    worst = max(f["max_abs_diff"] for comparison in figures.values() for f in comparison.values())
    passed = worst <= TOLERANCE
    print(json.dumps(figures, indent=2))
    print(f"{'OK' if passed else 'FAIL'}: worst |ours - mediapipe {version}| = {worst:.5f} (tolerance {TOLERANCE})")

    if args.record:
        record_check(args.models / MODEL_FILE.parent / "manifest.json", {
            "command": "python -m training.person.reference --mediapipe-python <python with "
                       "mediapipe> --record",
            "reference": f"mediapipe {version}, SelfieSegmentation(model_selection=0).process(rgb).segmentation_mask",
            "model_sha256": sha256(args.models / MODEL_FILE),
            "images": [str(path) for path in args.images],
            "comparisons": {"photo": "PersonSegmenter.mask at the photo's size (both resizes included)",
                            str(SIDE): f"the photo area-resized to {SIDE}x{SIDE} first (the network alone)"},
            "tolerance_max_abs_diff": TOLERANCE,
            "figures": figures,
            "worst_max_abs_diff": worst,
            "passed": passed,
        })
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
