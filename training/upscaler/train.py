"""Train FidelitySR for one factor: L1 (or L2) to the true photo on bicubic-downscaled crops.

The UpscalerJS ESRGAN tiers were trained with a GAN loss for sharp-looking
texture and score at bicubic's level on PSNR (bench/upscaler_bench.py);
fine-tuning them for fidelity on two CPU cores moved them by tenths of a dB
an hour. Restoring scans wants the faithful answer, so Revive trains its own
small network (model.py) from scratch in the classic "bicubic track" setting:
it starts as bicubic and learns only what bicubic misses.

Data (once): python -m training.common.sources --dir var/detector-data
Train:       python -m training.upscaler.train --factor 4
Export:      python -m training.upscaler.export --factor 4
The exact commands behind the committed models (x4 ran in three phases) are in
models/upscaler/manifest.json.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from services.common.logs import setup_logging
from training.common import sources
from training.common.loop import TrainingRun, add_run_flags, cosine_schedule, train_steps
from training.upscaler import dataset
from training.upscaler.model import BLOCKS, CHANNELS, FidelitySR, grow

log = logging.getLogger(__name__)

DEFAULT_RUN_ROOT = sources.DEFAULT_DIR.parent / "upscaler-train"


def run_dir(root: Path, factor: int) -> Path:
    return root / f"x{factor}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=int, choices=(2, 4), required=True)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--photos", choices=sorted(dataset.PHOTO_SETS), default="wide", help="training photo set")
    parser.add_argument("--run-root", type=Path, default=DEFAULT_RUN_ROOT, help="one run directory per factor below it")
    add_run_flags(parser, steps=7000, batch=16, crop=192, crop_help="high-resolution crop side, a multiple of the factor",
                  lr=1e-3, seed=5, save_every=100, threads=2)
    parser.add_argument("--blocks", type=int, default=BLOCKS, help="residual blocks (model capacity)")
    parser.add_argument("--channels", type=int, default=CHANNELS, help="feature channels (model capacity)")
    parser.add_argument("--grey", type=float, default=0.0,
                        help="fraction of crops made black-and-white, as most photos Revive restores are")
    parser.add_argument("--loss", choices=("l1", "l2"), default="l1",
                        help="l1 learns fastest; l2 is what PSNR measures, for a last fine-tune at a low rate")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16 runs the network's correction under autocast: about 3x the steps per "
                             "second on CPUs with AMX (oneDNN); the bicubic skip and the weights stay float32")
    parser.add_argument("--init", type=Path, help="start from these weights (a run's model.pt or checkpoint.pt) "
                                                  "for a further, fresh schedule in a new --run-root; a network "
                                                  "with fewer blocks or channels is grown to --blocks and "
                                                  "--channels")
    parser.add_argument("--pause-at", type=int, help="stop (and checkpoint) at this step")
    return parser.parse_args(argv)


def gain_over_bicubic(model: torch.nn.Module, low: torch.Tensor, high: torch.Tensor, factor: int) -> float:
    """Mean PSNR gain (dB, RGB) over bicubic on a batch: the validation stand-in for the bench's Y-PSNR gain."""
    with torch.no_grad():
        guess = model(low)
        bicubic = torch.nn.functional.interpolate(low, scale_factor=factor, mode="bicubic").clamp(0, 1)

    def psnr(x: torch.Tensor) -> torch.Tensor:
        return -10 * torch.log10(((x - high) ** 2).mean(dim=(1, 2, 3)))

    return float((psnr(guess) - psnr(bicubic)).mean())


def train(args: argparse.Namespace) -> bool:
    if args.crop % args.factor:
        raise SystemExit(f"--crop {args.crop} is not a multiple of --factor {args.factor}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos = dataset.load(dataset.PHOTO_SETS[args.photos], args.data_dir)
    low_val, high_val = (torch.from_numpy(a) for a in
                         dataset.validation_pairs(dataset.load(dataset.VALIDATE, args.data_dir), args.factor, args.crop))
    model = FidelitySR(args.factor, channels=args.channels, blocks=args.blocks)
    if args.init:
        state = torch.load(args.init, weights_only=False)
        grow(model, state.get("model", state))
    # oneDNN's convolutions are fastest (and use AMX for bfloat16) on channels-last tensors.
    model = model.to(memory_format=torch.channels_last)
    mixed = args.precision == "bfloat16"
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    run = TrainingRun(run_dir(args.run_root, args.factor), model, optimizer,
                      cosine_schedule(optimizer, args.steps, floor=0.02, warmup=50), vars(args))
    log.info("training", extra={"factor": args.factor, "photos": len(photos),
                                "parameters": sum(p.numel() for p in model.parameters())})

    def loss_at(step: int) -> torch.Tensor:
        low, high = (torch.from_numpy(a).contiguous(memory_format=torch.channels_last)
                     for a in dataset.batch(photos, args.factor, args.crop, args.batch, args.seed, step,
                                               args.grey))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            correction = model.correction(low)
        error = model.compose(low, correction) - high
        return error.abs().mean() if args.loss == "l1" else error.square().mean()

    def evaluate() -> dict[str, float]:
        model.eval()
        return {"val_gain_db": round(gain_over_bicubic(model, low_val, high_val, args.factor), 3)}

    return train_steps(run, args.steps, loss_at, minutes=args.minutes, save_every=args.save_every,
                       pause_at=args.pause_at, evaluate=evaluate, desc=f"upscaler x{args.factor}")


def main() -> None:
    setup_logging("info")
    train(parse_args())


if __name__ == "__main__":
    main()
