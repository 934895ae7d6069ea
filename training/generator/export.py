"""Export the trained RestorationNet to the ONNX model the "learned" engine serves.

Batch, height and width are dynamic (height and width multiples of
planes.MULTIPLE), so one file serves every working resolution and TensorRT
can build optimisation profiles over them. The export is checked against
torch eager on a non-square batch before anything is written; the manifest
next to the model records provenance, and `bench/generator_bench.py
--write-manifest` adds the figures measured on the held-out photos.

python -m training.generator.export [--run-dir var/generator-train]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.generator.planes import CHANNELS
from training.common import sources
from training.common.artifacts import REPO, shown
from training.common.loop import lineage
from training.common.onnx_export import export_checked
from training.generator import faces
from training.generator.model import RestorationNet, parameter_count
from training.generator.train import DEFAULT_RUN_DIR

log = logging.getLogger(__name__)

MODEL_DIR = REPO / "models" / "generator"
ONNX_NAME = "restoration.onnx"
WEIGHTS_NAME = "restoration.pt"
MANIFEST_NAME = "restoration.json"
#: Largest |ONNX - torch| accepted on the probe (normalised Lab).
TOLERANCE = 1e-3


def export_onnx(model: RestorationNet, path: Path) -> float:
    """Write the ONNX graph and return its worst disagreement with torch on a probe batch."""
    return export_checked(model, path, torch.rand(1, CHANNELS, 64, 64), torch.randn(2, CHANNELS, 72, 120) * 0.5,
                          "planes", ("lab",), TOLERANCE)


#: The code that trained runs from before gender and age were input planes (their checkpoints lack face_batch).
BEFORE_CONDITIONS = "(with the code of commit 05f4357)"


def train_commands(run_dir: Path) -> list[str]:
    """The training commands behind a run, the runs it was --init'ed from first."""
    flags = ("steps", "batch", "tries", "crop", "lr", "seed", "minutes", "threads", "face_batch", "attribute_weight",
             "critic_view")
    commands = []
    for record in lineage(run_dir):
        given = record.flags(flags)
        if record.init:
            given += [f"--init {shown(record.init)}", f"--run-dir {shown(record.args['run_dir'])}"]
        command = "python -m training.generator.train " + " ".join(given)
        commands.append(command if "face_batch" in record.args else f"{BEFORE_CONDITIONS} {command}")
    return commands


def write_manifest(out_dir: Path, run_dir: Path, steps: int, parameters: int, worst: float) -> None:
    path = out_dir / MANIFEST_NAME
    previous = json.loads(path.read_text()) if path.exists() else {}
    manifest = {
        "model": "RestorationNet (training/generator/model.py)",
        "files": {name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
                  for name in (ONNX_NAME, WEIGHTS_NAME)},
        "parameters": parameters,
        "trained_steps": steps,
        "inputs": f"planes: N x {CHANNELS} x H x W float32 (services/generator/planes.py), H and W multiples of 8",
        "outputs": "lab: N x 3 x H x W restored Lab, normalised (L/100, a/110, b/110)",
        "onnx_vs_torch_max_abs_diff": worst,
        "license": "Apache-2.0 (code); weights trained only on the photos listed under data",
        "provenance": "trained from scratch on one CPU thread, no pretrained weights; synthetic damage from "
                      "training/detector/synthetic_damage.py on crops of the training photos; gender and "
                      "age fine-tuned with face-api's age/gender network (models/faces) as the critic",
        "data": {"train": [p.path for p in sources.TRAIN], "held_out": [p.path for p in sources.HELD_OUT],
                 "faces_train": [f"npm @vladmandic/face-api@1.7.15 {name}" for name in faces.TRAIN_PHOTOS]
                 + list(faces.EXTRA_PHOTOS),
                 "faces_held_out": "tests/data/faces (the benchmark's)",
                 "sources_and_licenses": "training/common/sources.py, models/detector/DATA_LICENSES.md"},
        "commands": [
            "python -m training.common.sources --dir var/detector-data",
            *train_commands(run_dir),
            f"python -m training.generator.export --run-dir {shown(run_dir)}",
            "python -m bench.generator_bench --write-manifest",
        ],
        "eval": previous.get("eval", "not measured yet: python -m bench.generator_bench --write-manifest"),
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    setup_logging("info")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--out-dir", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = RestorationNet()
    model.load_state_dict(state["model"])
    worst = export_onnx(model, args.out_dir / ONNX_NAME)
    torch.save(model.state_dict(), args.out_dir / WEIGHTS_NAME)
    write_manifest(args.out_dir, args.run_dir, state["step"], parameter_count(model), worst)
    log.info("exported", extra={"dir": str(args.out_dir), "step": state["step"], "max_abs_diff_vs_torch": worst})


if __name__ == "__main__":
    main()
