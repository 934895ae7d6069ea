"""Check the ONNX pose landmarks against the .tflite itself, run by Google's LiteRT interpreter.

    python -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert==2.3.0
    python -m training.person.pose_reference --litert-python /tmp/litert/bin/python \\
        --wheel build/wheels/mediapipe-0.10.14-...whl [--record]

LiteRT is TensorFlow Lite's runtime: what MediaPipe runs the file with. It
lives in its own interpreter (its numpy need not be the project's): the crops
are made here, exactly as `PoseLandmarker` makes them (framed on each face the
analyser finds in the photos), handed over in an .npz with the .tflite read
from the wheel, and LiteRT's outputs come back the same way. Per crop: the
largest difference of the body points (pixels of the 256 crop) among the
points LiteRT sees (visibility >= 0.5), of the visibilities and of the person
probability. --record writes them into models/pose/manifest.json.
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
import onnxruntime as ort
from PIL import Image

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.common.runtime import RuntimeOptions
from services.vision.faces.analyzer import box_of, shared_face_analyzer
from services.vision.pose import MODEL_FILE, SIDE, VISIBLE, frame
from training.person.convert import MODELS as CONVERTED
from training.person.convert import read_wheel, record_check

DEFAULT_IMAGES = [Path("tests/data/faces") / f"sample{n}.jpg" for n in (1, 3, 6)]
MODELS = Path("models")
#: Largest differences allowed: body points in crop pixels, visibilities and probabilities.
POINT_TOLERANCE, PROBABILITY_TOLERANCE = 0.5, 0.01

#: Runs under the LiteRT interpreter: argv[1] = .tflite, argv[2] = crops .npz in, argv[3] = outputs .npz out.
LITERT_SCRIPT = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

crops, out = np.load(sys.argv[2]), {}
interpreter = Interpreter(model_path=sys.argv[1])
interpreter.allocate_tensors()
(source,) = interpreter.get_input_details()
targets = interpreter.get_output_details()
for name in crops.files:
    interpreter.set_tensor(source["index"], crops[name][None])
    interpreter.invoke()
    landmarks, present = (interpreter.get_tensor(target["index"]) for target in targets[:2])
    out[name + "/landmarks"], out[name + "/pose"] = landmarks[0], present[0]
np.savez(sys.argv[3], **out)
"""


def face_crops(images: list[Path], models: Path) -> dict[str, np.ndarray]:
    """SIDE x SIDE x 3 float32 0..1 crops, framed on every face found, named <photo>#<face>."""
    analyzer = shared_face_analyzer(models, RuntimeOptions(providers=("cpu",), threads=1))
    crops = {}
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for index, face in enumerate(analyzer.analyze(rgb)):
            crop = cv2.warpAffine(rgb, frame(box_of(face)), (SIDE, SIDE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            crops[f"{path.stem}#{index}"] = crop.astype(np.float32) / 255.0
    return crops


def litert_outputs(python: str, tflite: bytes, crops: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as scratch:
        model, sent, received = (Path(scratch) / name for name in ("pose.tflite", "crops.npz", "out.npz"))
        model.write_bytes(tflite)
        np.savez(sent, **crops)
        subprocess.run([python, "-c", LITERT_SCRIPT, str(model), str(sent), str(received)], check=True)
        with np.load(received) as outputs:
            return {name: outputs[name] for name in outputs.files}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def compare(path: Path, crops: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict:
    """{crop: {points_max_abs_diff, visibility_max_abs_diff, pose_abs_diff, points_seen}}."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    figures = {}
    for name, crop in crops.items():
        landmarks, present, _ = session.run(None, {"image": crop.transpose(2, 0, 1)[None]})
        ours, reference = landmarks[0].reshape(-1, 5)[:33], theirs[name + "/landmarks"].reshape(-1, 5)[:33]
        seen = sigmoid(reference[:, 3]) >= VISIBLE
        figures[name] = {
            "points_max_abs_diff": float(np.abs(ours[seen, :2] - reference[seen, :2]).max()) if seen.any() else 0.0,
            "visibility_max_abs_diff": float(np.abs(sigmoid(ours[:, 3]) - sigmoid(reference[:, 3])).max()),
            "pose_abs_diff": float(abs(present[0, 0] - theirs[name + "/pose"][0])),
            "points_seen": int(seen.sum()),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litert-python", required=True, help="an interpreter with ai-edge-litert installed")
    parser.add_argument("--wheel", type=Path, required=True, help="the mediapipe 0.10.14 wheel the file came from")
    parser.add_argument("--images", type=Path, nargs="+", default=DEFAULT_IMAGES)
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--record", action="store_true", help="write the figures into models/pose/manifest.json")
    args = parser.parse_args(argv)
    setup_logging("warning")

    tflite, _ = read_wheel(args.wheel, CONVERTED["pose"].member)
    crops = face_crops(args.images, args.models)
    figures = compare(args.models / MODEL_FILE, crops, litert_outputs(args.litert_python, tflite, crops))
    worst_points = max(f["points_max_abs_diff"] for f in figures.values())
    worst_probability = max(max(f["visibility_max_abs_diff"], f["pose_abs_diff"]) for f in figures.values())
    passed = worst_points <= POINT_TOLERANCE and worst_probability <= PROBABILITY_TOLERANCE
    print(json.dumps(figures, indent=2))
    print(f"{'OK' if passed else 'FAIL'}: {len(figures)} crops; worst point {worst_points:.4f} px (tolerance "
          f"{POINT_TOLERANCE}), worst probability {worst_probability:.5f} (tolerance {PROBABILITY_TOLERANCE})")

    if args.record:
        record_check(args.models / MODEL_FILE.parent / "manifest.json", {
            "command": "python -m training.person.pose_reference --litert-python <python with ai-edge-litert> "
                       "--wheel <mediapipe wheel> --record",
            "reference": "the wheel's pose_landmark_full.tflite run by ai-edge-litert's Interpreter",
            "model_sha256": sha256(args.models / MODEL_FILE),
            "images": [str(path) for path in args.images],
            "crops": "PoseLandmarker's: framed on each face the analyser finds (services/vision/pose.py: frame)",
            "tolerance": {"points_px": POINT_TOLERANCE, "probability": PROBABILITY_TOLERANCE},
            "figures": figures,
            "worst": {"points_px": worst_points, "probability": worst_probability},
            "passed": passed,
        })
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
