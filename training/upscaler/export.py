"""Export a trained FidelitySR to the ONNX file the "fidelity" engine serves, with its manifest entry.

The export is checked against torch eager on a batch and shape it was not
traced with (training/upscaler/convert.py:export_onnx); the entry
in models/upscaler/manifest.json records provenance, data, licences and the
training command, and `python -m bench.upscaler_bench --record
models/upscaler/manifest.json` adds the held-out figures.

python -m training.upscaler.export --factor 4
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import torch

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.upscaler.engines.fidelity import STEM
from services.upscaler.engines.tiled_onnx import DEFAULT_MODELS_DIR, model_path
from training.common.artifacts import shown
from training.common.loop import lineage
from training.common.onnx_export import quiet_exporter
from training.upscaler import dataset
from training.upscaler.convert import export_onnx
from training.upscaler.model import FidelitySR
from training.upscaler.train import DEFAULT_RUN_ROOT, run_dir

log = logging.getLogger(__name__)


def train_commands(run_dir: Path) -> list[str]:
    """The training commands that reproduce a run, its --init runs first (read from their checkpoints)."""
    commands = []
    for record in lineage(run_dir):
        # Runs from before --photos existed trained on the base set.
        flags = [f"--factor {record.args['factor']}", f"--photos {record.args.get('photos', 'base')}"]
        flags += record.flags(("crop", "batch", "steps", "lr", "seed", "threads", "blocks", "channels", "precision",
                               "loss", "grey"))
        if record.step < int(record.args["steps"]):
            flags.append(f"--pause-at {record.step}")
        if record.init:
            flags += [f"--init {shown(record.init)}", f"--run-root {shown(record.args['run_root'])}"]
        commands.append("python -m training.upscaler.train " + " ".join(flags))
    return commands


def manifest_entry(path: Path, model: FidelitySR, factor: int, run: Path, max_diff: float) -> dict:
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    history = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines() if line.strip()]
    # Runs from before --photos existed trained on the base set.
    photo_set = state["args"].get("photos", "base")
    return {
        "file": path.name,
        "sha256": sha256(path),
        "weights": {"file": path.with_suffix(".pt").name, "sha256": sha256(path.with_suffix(".pt"))},
        "scale": factor,
        "parameters": sum(p.numel() for p in model.parameters()),
        "architecture": "FidelitySR (training/upscaler/model.py): residual blocks at input resolution, "
                        "sub-pixel output, bicubic global skip",
        "input": {"name": "rgb", "layout": "NCHW RGB float32 0..1, any batch/height/width"},
        "output": {"name": "rgb_out", "layout": f"NCHW RGB float32 0..1, height and width x{factor}"},
        "source": {
            "trained_by": "Revive, from scratch on CPU; no pretrained weights",
            "license": "Apache-2.0, as the project; weights trained on the photos listed here",
            "data": {"set": photo_set, "train": [p.path for p in dataset.PHOTO_SETS[photo_set]],
                     "validation": [p.path for p in dataset.VALIDATE],
                     "licenses": "models/detector/DATA_LICENSES.md",
                     "degradation": "Pillow bicubic (antialiased) downscale, 8-bit"},
            "commands": [
                "python -m training.common.sources --dir var/detector-data",
                *train_commands(run),
                f"python -m training.upscaler.export --factor {factor} --run-root {shown(run.parent)}",
                "python -m bench.upscaler_bench --record models/upscaler/manifest.json",
            ],
            "steps_done": state["step"],
            "final_validation_gain_db_rgb": history[-1].get("val_gain_db") if history else None,
        },
        "onnx_vs_pytorch_max_abs_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, choices=(2, 4), required=True)
    parser.add_argument("--run-root", type=Path, default=DEFAULT_RUN_ROOT)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    args = parser.parse_args(argv)
    setup_logging("info")
    quiet_exporter()
    run = run_dir(args.run_root, args.factor)
    state = torch.load(run / "model.pt", weights_only=True)
    model = FidelitySR.from_state(args.factor, state)
    path = model_path(args.models_dir, STEM, args.factor)
    path.parent.mkdir(parents=True, exist_ok=True)
    max_diff = export_onnx(model, path)
    # The PyTorch weights too: the bench's eager comparison and any later fine-tune start from them.
    shutil.copyfile(run / "model.pt", path.with_suffix(".pt"))
    manifest_path = path.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("models", {})[path.stem] = manifest_entry(path, model, args.factor, run, max_diff)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("exported", extra={"model": str(path), "bytes": path.stat().st_size, "max_diff": max_diff})


if __name__ == "__main__":
    main()
