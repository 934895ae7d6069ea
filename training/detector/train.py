"""Train DamageUNet on synthetically damaged crops of the training photos.

Seeded and resumable (training/common/loop.py): a rerun with the same
flags continues from the checkpoint with the same batches.

Data (once): python -m training.common.sources --dir var/detector-data
Train:       OMP_NUM_THREADS=1 python -m training.detector.train
Export:      python -m training.detector.export
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from torch.nn import functional as F

from services.common.logs import setup_logging
from training.common import gcompris_photos, sources
from training.common.loop import TrainingRun, add_run_flags, train_steps
from training.detector.dataset import (
    DAMAGE,
    PHOTO_SETS,
    PORTRAITS,
    UNDAMAGED_SHARE,
    load_training_photos,
    training_batch,
)
from training.detector.model import DamageUNet, load_compatible, parameter_count
from training.detector.synthetic_damage import DamageSynthesizer

log = logging.getLogger(__name__)

DEFAULT_RUN_DIR = sources.DEFAULT_DIR.parent / "detector-train"
#: Positive-class weights (SCRATCH, TEAR, STAIN, FADING): thin damage is rare per pixel.
POS_WEIGHT = (4.0, 1.5, 3.0, 1.5)
#: Pixels within this many of any damage are not the photo's own edges (the damage's edges are its own).
EDGE_CLEARANCE = 2
#: The photo's own edges are measured as the luma's gradient magnitude over this percentile of it in the crop.
EDGE_PERCENTILE = 0.99


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--gcompris-dir", type=Path, default=gcompris_photos.DEFAULT_DIR,
                        help="GCompris's photos, for the 'broad' set (python -m training.common.gcompris_photos)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="checkpoint and log directory")
    add_run_flags(parser, steps=6000, batch=8, crop=160, crop_help="crop side, a multiple of 32", lr=2e-3, seed=7,
                  save_every=250)
    parser.add_argument("--photos", choices=sorted(PHOTO_SETS), default="base", help="training photo set")
    parser.add_argument("--portrait-share", type=float, default=0.0,
                        help="share of crops taken from the portraits, down to whole faces at small-print scale")
    parser.add_argument("--damage", choices=sorted(DAMAGE), default="default",
                        help="damage recipe: 'real' adds crack networks, hairlines and foxing (README.md)")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16 autocast: several times the steps per second on CPUs with AMX")
    parser.add_argument("--undamaged", type=float, default=UNDAMAGED_SHARE,
                        help="share of crops left undamaged: the negatives that teach clean photos stay clean")
    parser.add_argument("--init", type=Path, help="start from these weights (a model.pt or checkpoint.pt) "
                                                  "for a fresh schedule in a new --run-dir")
    parser.add_argument("--edge-negatives", type=float, default=0.0,
                        help="extra weight of the crack channel's negatives on the photo's own edges (collars, face "
                             "contours, rims), up to 1 + this on the strongest: `edge_weights`")
    return parser.parse_args(argv)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per channel over the batch; robust to how rare a damage type is."""
    prob = torch.sigmoid(logits)
    dims = (0, 2, 3)
    overlap = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return (1 - (2 * overlap + 1) / (total + 1)).mean()


def edge_weights(images: torch.Tensor, target_masks: torch.Tensor, strength: float) -> torch.Tensor:
    """N x 4 x H x W per-pixel BCE weights: 1, and on the crack channel up to 1 + `strength` where the photo has
    an edge of its own (the luma's Sobel magnitude, relative to the crop's EDGE_PERCENTILE) and no damage is
    near. Why: the detector flagged a real boy's collar and the contour of his cheek as cracks, and the fill
    then smeared them; with every negative pixel counting alike, the few on sharp edges weigh nothing."""
    luma = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T]).unsqueeze(1)
    gradient = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernels).norm(dim=1, keepdim=True)
    scale = torch.quantile(gradient.flatten(1), EDGE_PERCENTILE, dim=1).clamp_min(1e-3).view(-1, 1, 1, 1)
    side = 2 * EDGE_CLEARANCE + 1
    near_damage = F.max_pool2d(target_masks[:, :3].amax(dim=1, keepdim=True), side, 1, EDGE_CLEARANCE) > 0.5
    edges = (gradient / scale).clamp(0, 1) * ~near_damage
    weights = torch.ones_like(target_masks)
    weights[:, :1] += strength * edges
    return weights


def loss_fn(masks: torch.Tensor, scores: torch.Tensor, target_masks: torch.Tensor,
            target_scores: torch.Tensor, pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    weight = torch.tensor(POS_WEIGHT).view(1, -1, 1, 1)
    bce = F.binary_cross_entropy_with_logits(masks, target_masks, weight=pixel_weights, pos_weight=weight)
    score = F.binary_cross_entropy_with_logits(scores, target_scores)
    return bce + dice_loss(masks, target_masks) + 0.2 * score


def train(args: argparse.Namespace) -> bool:
    """True when the run finished (model.pt written), False when `--minutes` paused it."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos = load_training_photos(args.photos, args.data_dir, args.gcompris_dir)
    portraits = sources.load_all(PORTRAITS, args.data_dir) if args.portrait_share else []
    synth = DamageSynthesizer(DAMAGE[args.damage])
    model = DamageUNet()
    if args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=False)
        load_compatible(model, state.get("model", state))
    # oneDNN's convolutions are fastest (and use AMX for bfloat16) on channels-last tensors.
    model = model.to(memory_format=torch.channels_last)
    mixed = args.precision == "bfloat16"
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    run = TrainingRun(args.run_dir, model, optimizer, schedule, vars(args))
    log.info("training", extra={"parameters": parameter_count(model), "steps": args.steps})

    def loss_at(step: int) -> torch.Tensor:
        batch = training_batch(photos, synth, args.crop, args.batch, args.seed, step, args.undamaged, portraits,
                               args.portrait_share)
        images = torch.from_numpy(batch.images).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            masks, scores = model(images)
        targets = torch.from_numpy(batch.masks)
        weights = edge_weights(torch.from_numpy(batch.images), targets, args.edge_negatives) \
            if args.edge_negatives else None
        return loss_fn(masks.float(), scores.float(), targets, torch.from_numpy(batch.scores), weights)

    return train_steps(run, args.steps, loss_at, minutes=args.minutes, save_every=args.save_every, desc="detector")


def main() -> None:
    setup_logging("info")
    train(parse_args())


if __name__ == "__main__":
    main()
