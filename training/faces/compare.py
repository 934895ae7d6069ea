"""Check the ONNX pipeline against face-api's own output (reference.json from reference.sh).

    python -m training.faces.compare [--images DIR] [--record]

Faces are paired by box IoU; for each pair it prints box IoU, landmark error in
pixels, age difference, gender agreement and the distance between the two
L2-normalised embeddings, then checks them against TOLERANCES and exits 1 if
any is exceeded. It runs twice: with face-api's landmark placement (checks the
conversion itself) and with ours (the service's output). --record stores the
figures in models/faces/manifest.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from revive.v1 import common_pb2

from services.common.logs import setup_logging
from services.common.runtime import RuntimeOptions
from services.vision.faces.analyzer import FaceAnalyzer
from services.vision.faces.geometry import iou

DEFAULT_IMAGES = Path("build/npm/node_modules/@vladmandic/face-api/demo")
MODELS = Path("models/faces")

#: What "matches face-api" means, per landmark placement (see analyzer.py). With
#: face-api's placement the networks must agree to rounding: a crop can still move
#: by one pixel when a coordinate sits on an integer, which moves age by ~0.2 year.
#: With the crop placement (the default) landmarks move by the detection box's
#: sub-pixel part, and age and embedding follow their crops. Embedding distance is
#: between unit vectors; the different people in the photos are >= 0.34 apart.
TOLERANCES = {
    "faceapi": {
        "unmatched_faces": 0, "box_iou_min": 0.999, "landmark_error_px_max": 0.01,
        "age_diff_years_max": 0.5, "gender_agreement_min": 1.0, "embedding_distance_max": 0.001,
    },
    "crop": {
        "unmatched_faces": 0, "box_iou_min": 0.999, "landmark_error_px_max": 1.5,
        "age_diff_years_max": 5.0, "gender_agreement_min": 1.0, "embedding_distance_max": 0.1,
    },
}


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, np.float64)
    return vector / np.linalg.norm(vector)


def _box(face: common_pb2.Face) -> np.ndarray:
    return np.array([face.box.x, face.box.y, face.box.width, face.box.height])


def compare_image(ours: list[common_pb2.Face], theirs: list[dict]) -> tuple[list[dict], int]:
    """Per-face figures for the faces both found (paired by best IoU), and how many were unpaired."""
    rows = []
    unpaired = list(range(len(ours)))
    for reference in theirs:
        if not unpaired:
            break
        overlaps = iou(np.array(reference["box"]), np.stack([_box(ours[i]) for i in unpaired]))
        face = ours[unpaired.pop(int(np.argmax(overlaps)))]
        landmarks = np.array([[p.x, p.y] for p in face.landmarks])
        gender = "male" if face.gender == common_pb2.MALE else "female"
        rows.append({
            "box_iou": float(overlaps.max()),
            "landmark_error_px_mean": float(np.linalg.norm(landmarks - reference["landmarks"], axis=1).mean()),
            "landmark_error_px_max": float(np.linalg.norm(landmarks - reference["landmarks"], axis=1).max()),
            "box_width": reference["box"][2],
            "age": reference["age"],
            "age_diff_years": abs(face.age - reference["age"]),
            "gender_agrees": gender == reference["gender"],
            "embedding_distance": float(np.linalg.norm(_unit(face.embedding) - _unit(reference["descriptor"]))),
        })
    return rows, abs(len(ours) - len(theirs))


def summarise(rows: list[dict], unmatched: int) -> dict:
    return {
        "faces": len(rows),
        "unmatched_faces": unmatched,
        "box_iou_min": min(r["box_iou"] for r in rows),
        "landmark_error_px_mean": float(np.mean([r["landmark_error_px_mean"] for r in rows])),
        "landmark_error_px_max": max(r["landmark_error_px_max"] for r in rows),
        "age_diff_years_max": max(r["age_diff_years"] for r in rows),
        "gender_agreement_min": float(np.mean([r["gender_agrees"] for r in rows])),
        "embedding_distance_max": max(r["embedding_distance"] for r in rows),
    }


def failures(summary: dict, tolerances: dict) -> list[str]:
    """The tolerances the summary breaks (minima must be reached, everything else not exceeded)."""
    broken = []
    for key, limit in tolerances.items():
        value = summary[key]
        if (value < limit) if key.endswith("_min") else (value > limit):
            broken.append(f"{key}={value:.4g} (tolerance {limit})")
    return broken


def run(analyzer: FaceAnalyzer, reference: dict, images: Path) -> dict:
    """Analyse every reference photo found in `images`, print per-face figures, return the summary."""
    all_rows, unmatched = [], 0
    for result in reference["results"]:
        path = images / f"{result['image']}.jpg"
        if not path.exists():
            print(f"{result['image']}: skipped, {path} not found")
            continue
        faces = analyzer.analyze(np.asarray(Image.open(path).convert("RGB")))
        rows, missing = compare_image(faces, result["faces"])
        all_rows += rows
        unmatched += missing
        print(f"{result['image']}: ours {len(faces)} faces, face-api {len(result['faces'])}")
        for row in rows:
            print(f"  IoU {row['box_iou']:.4f}  landmarks {row['landmark_error_px_mean']:.3f}/"
                  f"{row['landmark_error_px_max']:.3f} px (mean/max, box {row['box_width']:.0f} px)  "
                  f"age {row['age']:.1f} d{row['age_diff_years']:.3f}  gender {'=' if row['gender_agrees'] else '!='}"
                  f"  embedding distance {row['embedding_distance']:.4f}")
    return summarise(all_rows, unmatched)


def identity_spread(reference: dict) -> float:
    """Smallest face-api distance between two different detected people: the scale the tolerance sits on."""
    descriptors = [np.asarray(f["descriptor"]) for r in reference["results"] for f in r["faces"]]
    return min(float(np.linalg.norm(_unit(a) - _unit(b)))
               for i, a in enumerate(descriptors) for b in descriptors[i + 1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder with the sample*.jpg photos")
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--reference", type=Path, default=MODELS / "reference.json")
    parser.add_argument("--record", action="store_true", help="write the figures into the models' manifest.json")
    args = parser.parse_args(argv)
    setup_logging("warning")

    reference = json.loads(args.reference.read_text())
    options = RuntimeOptions(providers=("cpu",), threads=1)
    results, passed = {}, True
    for placement, tolerances in TOLERANCES.items():
        print(f"== landmark placement: {placement}")
        analyzer = FaceAnalyzer(args.models, options, faceapi_landmark_shift=placement == "faceapi",
                                frame_filling=False, identity_beyond_blank=False)
        summary = run(analyzer, reference, args.images)
        broken = failures(summary, tolerances)
        passed = passed and not broken
        print(json.dumps(summary, indent=2))
        print("FAIL: " + "; ".join(broken) if broken else f"OK: within tolerances {json.dumps(tolerances)}")
        results[placement] = summary
    spread = identity_spread(reference)
    print(f"different people, smallest face-api embedding distance: {spread:.3f}")

    if args.record:
        manifest_path = args.models / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["check"] = {
            "command": "training/faces/reference.sh && python -m training.faces.compare --record",
            "reference": reference["versions"],
            "reference_file": args.reference.name,
            "inputs": "the package's demo JPEGs, decoded once by Pillow; node reads the same pixels as PPM",
            "placements": "faceapi = landmarks offset by the detection box as face-api does (checks the conversion); "
                          "crop = offset by the crop fed to the network (what FaceAnalyzer returns by default)",
            "images": sorted(r["image"] for r in reference["results"]),
            "tolerances": TOLERANCES,
            "figures": results,
            "different_people_min_embedding_distance": spread,
            "passed": passed,
        }
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
