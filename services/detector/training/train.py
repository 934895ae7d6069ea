"""Train DamageUNet on synthetically damaged crops of the training photos.

Seeded and resumable: the checkpoint (model, optimiser, schedule, step) is
written every `--save-every` steps and when `--minutes` runs out, and a rerun
with the same flags continues from it with the same batches.

Data (once): python -m services.detector.training.sources --dir var/detector-data
Train:       OMP_NUM_THREADS=1 python -m services.detector.training.train
Export:      python -m services.detector.training.export
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from services.common.logs import setup_logging
from services.detector.training import sources
from services.detector.training.dataset import training_batch
from services.detector.training.model import DamageUNet, parameter_count
from services.detector.training.synthetic_damage import DamageSynthesizer

log = logging.getLogger(__name__)

DEFAULT_RUN_DIR = sources.DEFAULT_DIR.parent / "detector-train"
#: Positive-class weights (SCRATCH, TEAR, STAIN, FADING): thin damage is rare per pixel.
POS_WEIGHT = (4.0, 1.5, 3.0, 1.5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="checkpoint and log directory")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=160, help="crop side, a multiple of 32")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=0, help="stop (and checkpoint) after this long; 0 = no limit")
    parser.add_argument("--save-every", type=int, default=250)
    return parser.parse_args(argv)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per channel over the batch; robust to how rare a damage type is."""
    prob = torch.sigmoid(logits)
    dims = (0, 2, 3)
    overlap = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    return (1 - (2 * overlap + 1) / (total + 1)).mean()


def loss_fn(masks: torch.Tensor, scores: torch.Tensor, target_masks: torch.Tensor,
            target_scores: torch.Tensor) -> torch.Tensor:
    weight = torch.tensor(POS_WEIGHT).view(1, -1, 1, 1)
    bce = F.binary_cross_entropy_with_logits(masks, target_masks, pos_weight=weight)
    score = F.binary_cross_entropy_with_logits(scores, target_scores)
    return bce + dice_loss(masks, target_masks) + 0.2 * score


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoint.pt"


def train(args: argparse.Namespace) -> Path:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    photos = sources.load_all(sources.TRAIN, args.data_dir)
    synth = DamageSynthesizer()
    model = DamageUNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    step = 0
    path = checkpoint_path(args.run_dir)
    if path.exists():
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        step = state["step"]
        torch.set_rng_state(state["torch_rng"])
    log.info("training", extra={"parameters": parameter_count(model), "from_step": step, "steps": args.steps})

    def save() -> None:
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(), "step": step, "torch_rng": torch.get_rng_state(),
                    "args": {k: str(v) for k, v in vars(args).items()}}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    deadline = time.monotonic() + args.minutes * 60 if args.minutes else float("inf")
    model.train()
    history = args.run_dir / "loss.jsonl"
    with tqdm(total=args.steps, initial=step, desc="train", unit="step") as bar, history.open("a") as losses:
        running = None
        while step < args.steps and time.monotonic() < deadline:
            batch = training_batch(photos, synth, args.crop, args.batch, args.seed, step)
            masks, scores = model(torch.from_numpy(batch.images))
            loss = loss_fn(masks, scores, torch.from_numpy(batch.masks), torch.from_numpy(batch.scores))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
            if step % 50 == 0:
                losses.write(json.dumps({"step": step, "loss": round(running, 4)}) + "\n")
                losses.flush()
            if step % args.save_every == 0:
                save()
    save()
    if step >= args.steps:
        torch.save(model.state_dict(), args.run_dir / "model.pt")
        log.info("finished", extra={"weights": str(args.run_dir / "model.pt")})
    else:
        log.info("paused; rerun the same command to resume", extra={"step": step})
    return args.run_dir / "model.pt"


def main() -> None:
    setup_logging("info")
    train(parse_args())


if __name__ == "__main__":
    main()
