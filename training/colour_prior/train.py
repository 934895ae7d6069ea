"""Train SceneColourNet on the colour training photos (dataset.py): lightness in, ab bins out.

Seeded and resumable (training/common/loop.py): a rerun with the same flags
continues from the checkpoint with the same batches. Every checkpoint logs the
validation figures (dataset.validation_photos, never trained on): mean ab
distance of the annealed mean to the truth, against leaving the photo grey.

Data (once): python -m training.common.sources --dir var/detector-data
             python -m training.common.gcompris_photos --dir var/colour-prior-data
Train:       OMP_NUM_THREADS=1 python -m training.colour_prior.train --precision bfloat16
Export:      python -m training.colour_prior.export
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from services.common.logs import setup_logging
from training.colour_prior.calibrate import judged
from training.colour_prior.dataset import ColourTargets, training_batch, training_photos, validation_photos
from training.colour_prior.model import TEMPERATURE, AnnealedMean, SceneColourNet, ab_bins, parameter_count
from training.common import gcompris_photos as photos
from training.common import sources
from training.common.loop import TrainingRun, add_run_flags, train_steps

log = logging.getLogger(__name__)

DEFAULT_RUN_DIR = sources.DEFAULT_DIR.parent / "colour-prior-train"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR, help="sources.py's photos")
    parser.add_argument("--more-dir", type=Path, default=photos.DEFAULT_DIR, help="photos.py's photos")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="checkpoint and log directory")
    add_run_flags(parser, steps=9000, batch=16, crop=128, crop_help="crop side, a multiple of 8", lr=1e-3, seed=5,
                  save_every=250)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16 autocast: several times the steps per second on CPUs with AMX")
    return parser.parse_args(argv)


def weighted_cross_entropy(logits: torch.Tensor, soft: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the soft targets, each pixel weighted by how rare its colour is."""
    per_pixel = -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1)
    return (per_pixel * weight).sum() / weight.sum()


def validation_figures(model: SceneColourNet, labs: list[np.ndarray],
                       temperature: float = TEMPERATURE) -> dict[str, float]:
    """Mean ab distance to the truth of the annealed mean and of grey, over the whole validation photos."""
    served = AnnealedMean(model, ab_bins(), temperature).eval()
    predicted, grey = [], []
    for lab in labs:
        out, truth = judged(served, lab)
        predicted.append(float(np.linalg.norm(out[..., :2] - truth, axis=-1).mean()))
        grey.append(float(np.linalg.norm(truth, axis=-1).mean()))
    return {"val_ab_distance": round(float(np.mean(predicted)), 3), "val_grey_distance": round(float(np.mean(grey)), 3)}


def train(args: argparse.Namespace) -> bool:
    """True when the run finished (model.pt written), False when `--minutes` paused it."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    colour = training_photos(args.data_dir, args.more_dir)
    validation = validation_photos(args.data_dir, args.more_dir)
    targets = ColourTargets(colour)
    # oneDNN's convolutions are fastest (and use AMX for bfloat16) on channels-last tensors.
    model = SceneColourNet(len(targets.bins)).to(memory_format=torch.channels_last)
    mixed = args.precision == "bfloat16"
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    run = TrainingRun(args.run_dir, model, optimizer, schedule, vars(args))
    log.info("training", extra={"parameters": parameter_count(model), "photos": len(colour), "steps": args.steps})

    def loss_at(step: int) -> torch.Tensor:
        batch = training_batch(colour, args.crop, args.batch, args.seed, step)
        soft, weight = targets.encode(batch.target)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            logits = model(batch.planes.contiguous(memory_format=torch.channels_last))
        return weighted_cross_entropy(logits.float(), soft, weight)

    return train_steps(run, args.steps, loss_at, minutes=args.minutes, save_every=args.save_every,
                       evaluate=lambda: validation_figures(model, validation), desc="colour prior")


def main() -> None:
    setup_logging("info")
    train(parse_args())


if __name__ == "__main__":
    main()
