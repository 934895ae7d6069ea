"""Export trained DamageUNet weights to the ONNX model the "unet" engine serves.

Per-type decision thresholds are first calibrated on fresh synthetic draws
from the training photos and folded into the graph, which ends in sigmoids,
so the engine reads probabilities thresholded at 0.5; batch, height and width
are dynamic (height and width multiples of model.MULTIPLE). The export is
checked against torch eager on a non-square input before the files are
written, and a manifest with provenance sits next to the model;
`bench/detector_bench.py --write-manifest` adds the measured figures.

python -m training.detector.export [--run-dir var/detector-train]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from training.common import gcompris_photos, sources
from training.common.artifacts import REPO, shown
from training.common.colour_photos import GCOMPRIS
from training.common.onnx_export import export_checked
from training.detector.dataset import DAMAGE, load_validation_photos, training_batch, training_photos
from training.detector.model import MASK_CHANNELS, DamageUNet, load_compatible, parameter_count
from training.detector.synthetic_damage import DamageParams, DamageSynthesizer
from training.detector.train import DEFAULT_RUN_DIR

log = logging.getLogger(__name__)

MODEL_DIR = REPO / "models" / "detector"
ONNX_NAME = "damage_unet.onnx"
WEIGHTS_NAME = "damage_unet.pt"
MANIFEST_NAME = "damage_unet.json"
#: Training flags that determine the weights (not paths or time budgets).
#: The training flags a manifest records, in the order its command shows them.
RUN_FLAGS = ("photos", "portrait_share", "damage", "undamaged", "edge_negatives", "precision", "crop", "batch",
             "steps", "lr", "seed", "threads")
#: Share of an undamaged photo's pixels a threshold may flag as one kind of damage: the clean-photo goal
#: (at most 0.5% flagged as any damage) shared between the four kinds.
CLEAN_CAP = 0.005 / MASK_CHANNELS
#: Decision thresholds tried. Single-pass probabilities, though the engine averages mirrored copies: the
#: averaged ones calibrated on the validation draws flagged 1.65% of clean held-out photos, against 0.39%
#: for these (the model before phase 7; a finer grid up to 0.995 cost F1 and kept false alarms as they were).
THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)
#: Seed of the calibration draws: not the training seed, so these crops and damage are new.
CALIBRATION_SEED = 99991
#: Batches of 8 calibration draws. With one validation photo 16 batches left the thresholds to chance (phase 9's
#: stain and fading thresholds moved by 0.1-0.15 between 16 and 64); the split is now fifteen photos
#: (dataset.load_validation_photos), and 64 batches stay.
CALIBRATION_BATCHES = 64


class Probabilities(nn.Module):
    """DamageUNet with sigmoids on both outputs: what serving wants.

    Each mask channel is shifted so that its calibrated decision threshold
    lands on 0.5: every consumer can keep thresholding masks at 128.
    """

    def __init__(self, model: DamageUNet, thresholds: Sequence[float] = (0.5,) * MASK_CHANNELS) -> None:
        super().__init__()
        self.model = model
        logits = torch.logit(torch.tensor(thresholds, dtype=torch.float32))
        self.register_buffer("offset", logits.view(1, MASK_CHANNELS, 1, 1))

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masks, scores = self.model(rgb)
        return torch.sigmoid(masks - self.offset), torch.sigmoid(scores)


def load_weights(path: Path) -> DamageUNet:
    model = DamageUNet()
    load_compatible(model, torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


@dataclass(frozen=True)
class Calibration:
    #: Per-type decision thresholds (probabilities), SCRATCH, TEAR, STAIN, FADING.
    thresholds: list[float]
    #: The crack probability with the best F1 whatever it flags on undamaged draws: where a crack's growth
    #: from its confident pixels stops (services/detector/engines/unet.py: grown).
    grow_probability: float

    @property
    def grow_level(self) -> int:
        """`grow_probability` as a level (0..255) of the exported SCRATCH mask, whose 128 is the decision."""
        shifted = np.log(self.grow_probability / (1 - self.grow_probability)) - np.log(
            self.thresholds[0] / (1 - self.thresholds[0]))
        return int(round(255 / (1 + np.exp(-shifted))))


def calibrate(model: DamageUNet, photos: Sequence[np.ndarray], batches: int, params: DamageParams,
              size: int = 256) -> Calibration:
    """Per-type thresholds from synthetic draws (`params`) of `photos`, the validation split: the best F1
    among the thresholds that flag at most CLEAN_CAP of the undamaged draws' pixels.

    The held-out photos stay unseen. A quarter of the draws are undamaged; "clean photos stay clean" is a
    goal of its own, so it bounds the choice rather than only weighing in F1 (where a few false pixels on
    an intact photo cost little and look like damage to a user).
    """
    synth = DamageSynthesizer(params)
    grid = THRESHOLD_GRID
    hits = np.zeros((MASK_CHANNELS, len(grid)))
    wrong = np.zeros((MASK_CHANNELS, len(grid)))
    clean_flagged = np.zeros((MASK_CHANNELS, len(grid)))
    clean_pixels = 0
    for step in tqdm(range(batches), desc="calibrate", unit="batch"):
        batch = training_batch(photos, synth, size, 8, CALIBRATION_SEED, step)
        with torch.no_grad():
            probabilities = torch.sigmoid(model(torch.from_numpy(batch.images))[0]).numpy()
        undamaged = batch.masks.reshape(len(batch.masks), -1).max(axis=1) < 0.5
        clean_pixels += int(undamaged.sum()) * size * size
        for channel in range(MASK_CHANNELS):
            truth = batch.masks[:, channel] >= 0.5
            for index, threshold in enumerate(grid):
                predicted = probabilities[:, channel] >= threshold
                hits[channel, index] += 2 * np.count_nonzero(predicted & truth)
                wrong[channel, index] += np.count_nonzero(predicted ^ truth)
                clean_flagged[channel, index] += np.count_nonzero(predicted[undamaged])
    f1 = hits / np.maximum(hits + wrong, 1)
    clean_rate = clean_flagged / max(clean_pixels, 1)
    thresholds = []
    for channel in range(MASK_CHANNELS):
        allowed = clean_rate[channel] <= CLEAN_CAP
        if not allowed.any():
            log.warning("no threshold keeps undamaged draws clean enough; taking the highest",
                        extra={"channel": channel, "flagged": float(clean_rate[channel, -1]), "cap": CLEAN_CAP})
        best = np.argmax(np.where(allowed, f1[channel], -1.0)) if allowed.any() else len(grid) - 1
        thresholds.append(round(float(grid[best]), 3))
    return Calibration(thresholds, round(float(grid[np.argmax(f1[0])]), 3))


def export(model: DamageUNet, path: Path, thresholds: Sequence[float]) -> None:
    worst = export_checked(Probabilities(model, thresholds), path, torch.rand(1, 3, 128, 128),
                           torch.rand(2, 3, 96, 160), "rgb", ("masks", "scores"), tolerance=1e-3)
    log.info("exported", extra={"path": str(path), "max_abs_diff_vs_torch": worst})


def train_command(args: dict) -> str:
    """The command that reproduces a run, from its recorded arguments (flags it did not have are left out)."""
    flags = [f"--{name.replace('_', '-')} {args[name]}" for name in RUN_FLAGS if args.get(name) not in (None, "None")]
    for name in ("init", "run_dir"):
        if args.get(name) not in (None, "None"):
            flags.append(f"--{name.replace('_', '-')} {shown(args[name])}")
    return "OMP_NUM_THREADS=1 python -m training.detector.train " + " ".join(flags)


def write_manifest(model: DamageUNet, run_dir: Path, out_dir: Path, calibration: Calibration,
                   calibrated_on: str) -> None:
    """The manifest; a run started from the committed model (--init) lists the phases that made that one first."""
    path = out_dir / MANIFEST_NAME
    previous = json.loads(path.read_text()) if path.exists() else {}
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    args = checkpoint["args"]
    phases = []
    if args.get("init") not in (None, "None"):
        phases = previous.get("training_phases") or [
            {"command": line, "steps": previous.get("training_steps_done")}
            for line in previous.get("commands", []) if "training.detector.train" in line]
    # Exporting the same run again replaces its phase instead of listing it twice.
    phases = [phase for phase in phases if phase.get("run_dir") != shown(run_dir)]
    phases = phases + [{"command": train_command(args), "steps": checkpoint["step"], "run_dir": shown(run_dir)}]
    photos = training_photos(args.get("photos", "base"), Path(args.get("gcompris_dir", gcompris_photos.DEFAULT_DIR)))
    credited = [{"path": p.path, "license": p.license, "author": p.author} for p in photos if p.source == GCOMPRIS]
    manifest = {
        "model": "DamageUNet (training/detector/model.py)",
        "files": {name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
                  for name in (ONNX_NAME, WEIGHTS_NAME)},
        "parameters": parameter_count(model),
        "inputs": "rgb: N x 3 x H x W float32 0..1, H and W multiples of 32",
        "outputs": "masks: N x 4 x H x W probabilities (SCRATCH, TEAR, STAIN, FADING); "
                   "scores: N x 2 probabilities (fading, grayscale)",
        "license": "Apache-2.0 (code); weights trained on the photos in DATA_LICENSES.md",
        "provenance": "trained on CPU by Revive, no pretrained weights; synthetic damage from "
                      "training/detector/synthetic_damage.py on crops of the training photos; each phase starts "
                      "from the weights the one before it produced (--init, the committed model at that time)",
        "data": {"train": [p.path for p in photos if p.source != GCOMPRIS],
                 **({"train_gcompris": credited} if credited else {}),
                 "validation (thresholds)": calibrated_on,
                 "held_out": [p.path for p in sources.HELD_OUT], "licenses": "DATA_LICENSES.md"},
        "training_phases": phases,
        "commands": [
            "python -m training.common.sources --dir var/detector-data",
            *(["python -m training.common.gcompris_photos --dir var/colour-prior-data"] if credited else []),
            *(phase["command"] for phase in phases),
            "python -m training.detector.export --run-dir " + shown(run_dir),
            "python -m bench.detector_bench --write-manifest",
        ],
        "training_steps_done": checkpoint["step"],
        "mask_thresholds": {"SCRATCH, TEAR, STAIN, FADING": calibration.thresholds,
                            "how": f"the best F1 on synthetic draws ({args.get('damage', 'default')} damage) from "
                                   f"{calibrated_on} among thresholds flagging at most {CLEAN_CAP:.3%} of the "
                                   "undamaged draws' pixels, folded into the graph so 0.5 is the decision point"},
        "scratch_grow_from": {"level": calibration.grow_level, "probability": calibration.grow_probability,
                              "how": "the crack probability with the best F1 on the same draws, unbounded, as a "
                                     "level of the exported mask: --detector-grow-from's default"},
        "eval": previous.get("eval", "not measured yet: run bench/detector_bench.py --write-manifest"),
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    setup_logging("info")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--out-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--calibration-batches", type=int, default=CALIBRATION_BATCHES,
                        help="batches of 8 validation draws the thresholds are chosen on")
    parser.add_argument("--checkpoint", action="store_true",
                        help="export the run's latest checkpoint, unfinished (a look at a run in progress)")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = args.run_dir / "model.pt"
    if args.checkpoint:
        weights = args.out_dir / "checkpoint-weights.pt"
        torch.save(torch.load(args.run_dir / "checkpoint.pt", weights_only=False)["model"], weights)
    model = load_weights(weights)
    args_of_run = torch.load(args.run_dir / "checkpoint.pt", weights_only=False)["args"]
    damage = DAMAGE[args_of_run.get("damage", "default")]
    # Runs before the validation split existed calibrated on their training photos; the manifest says which.
    if args_of_run.get("photos", "base") == "base":
        split, photos = sources.TRAIN, sources.load_all(sources.TRAIN, args.data_dir)
    else:
        split, photos = load_validation_photos(args.data_dir, Path(args_of_run.get("gcompris_dir",
                                                                                   gcompris_photos.DEFAULT_DIR)))
    calibration = calibrate(model, photos, args.calibration_batches, damage)
    calibrated_on = ("the training photos" if split is sources.TRAIN
                     else "the validation photos " + ", ".join(p.path for p in split)) + \
        f" ({args.calibration_batches * 8} draws)"
    log.info("calibrated", extra={"thresholds": calibration.thresholds, "grow_from": calibration.grow_level})
    export(model, args.out_dir / ONNX_NAME, calibration.thresholds)
    shutil.copyfile(weights, args.out_dir / WEIGHTS_NAME)
    write_manifest(model, args.run_dir, args.out_dir, calibration, calibrated_on)


if __name__ == "__main__":
    main()
