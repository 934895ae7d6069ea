"""Train RestorationNet on synthetically aged crops of the training photos.

Candidates must differ per seed, yet a plain L1 loss teaches a network to
ignore its noise (the average answer wins). So each pair is tried with
`--tries` noise draws and mostly the best try is penalised (a min-of-N,
"multiple choice" loss, as in Guzman-Rivera et al. 2012 and IMLE): the
noise learns to pick between plausible answers (chroma of a grey sweater,
the fill of a tear), while the mean term keeps every try faithful.

Gender and age: with `--face-batch`, each step also restores black-and-white
crops around faces for a random requested gender and age, and face-api's
age/gender network judges the result (`faces.py`); `--attribute-weight`
sets how much that counts against fidelity. It needs the npm package:
npm install --prefix build/npm @vladmandic/face-api@1.7.15

Seeded and resumable (training/common/loop.py): a rerun with the same
flags continues from the checkpoint with the same batches.

Data (once): python -m training.common.sources --dir var/detector-data
Train:       python -m training.generator.train --minutes 38
Export:      python -m training.generator.export
The exact commands behind the committed model are in models/generator/restoration.json.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from services.common.logs import setup_logging
from services.common.runtime import RuntimeOptions
from services.generator.planes import NOISE_CHANNELS, noise_planes
from services.vision.faces.analyzer import FaceAnalyzer
from training.common import sources
from training.common.loop import TrainingRun, add_run_flags, cosine_schedule, train_steps
from training.detector.synthetic_damage import DamageSynthesizer
from training.generator import faces
from training.generator.dataset import batch, held_out_pairs
from training.generator.model import RestorationNet, parameter_count, with_gender_and_age_inputs

log = logging.getLogger(__name__)

DEFAULT_RUN_DIR = sources.DEFAULT_DIR.parent / "generator-train"
#: Loss weight of chroma (a, b) relative to lightness, and of damaged pixels relative to intact ones.
CHROMA_WEIGHT = 1.5
DAMAGE_WEIGHT = 4.0
#: Share of the loss on the best try; the rest is the mean over tries.
BEST_TRY_SHARE = 0.75
VALIDATION_PAIRS = 24
GRADIENT_CLIP = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="checkpoint and log directory")
    parser.add_argument("--tries", type=int, default=2, help="noise draws per pair")
    parser.add_argument("--face-batch", type=int, default=0, help="face-guided pairs per step (gender and age)")
    parser.add_argument("--attribute-weight", type=float, default=0.05,
                        help="weight of the age/gender critic's loss against the restoration loss")
    parser.add_argument("--critic-view", choices=faces.VIEWS, default="served",
                        help="how the age/gender critic sees a prediction (faces.AttributeCritic)")
    parser.add_argument("--npm-dir", type=Path, default=faces.DEFAULT_NPM_DIR,
                        help="the installed @vladmandic/face-api")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="for the face analysis of the photos")
    parser.add_argument("--init", type=Path, help="start from these weights (a run's checkpoint.pt or model.pt) "
                                                  "for a further, fresh schedule in a new --run-dir")
    add_run_flags(parser, steps=3400, batch=8, crop=96, crop_help="working-resolution crop side, a multiple of 8",
                  lr=1e-3, seed=11, save_every=200)
    return parser.parse_args(argv)


def per_pair_loss(prediction: torch.Tensor, target: torch.Tensor, damage: torch.Tensor) -> torch.Tensor:
    """Weighted L1 per pair (N): chroma and damaged pixels count more."""
    channel = torch.tensor([1.0, CHROMA_WEIGHT, CHROMA_WEIGHT]).view(1, 3, 1, 1)
    weight = (1.0 + DAMAGE_WEIGHT * damage)[:, None] * channel
    return ((prediction - target).abs() * weight).mean(dim=(1, 2, 3))


def loss_fn(prediction: torch.Tensor, target: torch.Tensor, damage: torch.Tensor, tries: int) -> torch.Tensor:
    repeated = lambda t: t.repeat_interleave(tries, dim=0)
    losses = per_pair_loss(prediction, repeated(target), repeated(damage)).view(-1, tries)
    return (BEST_TRY_SHARE * losses.min(dim=1).values + (1 - BEST_TRY_SHARE) * losses.mean(dim=1)).mean()


@torch.no_grad()
def validate(model: RestorationNet, pairs: list, seed: int) -> dict[str, float]:
    """Mean L1 (normalised Lab) on held-out pairs: everywhere and inside the damage."""
    model.eval()
    rng = np.random.default_rng(seed)
    inputs = np.stack([p.planes for p in pairs])
    for row in inputs:
        row[-NOISE_CHANNELS:] = noise_planes(rng, row.shape[1:])
    error = (model(torch.from_numpy(inputs)).numpy() - np.stack([p.target for p in pairs])).__abs__().mean(axis=1)
    damage = np.stack([p.damage for p in pairs])
    return {"val_l1": float(error.mean()), "val_l1_damaged": float((error * damage).sum() / max(damage.sum(), 1.0))}


def train(args: argparse.Namespace) -> bool:
    """True when the run finished (model.pt written), False when `--minutes` paused it."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos = sources.load_all(sources.TRAIN, args.data_dir)
    validation = held_out_pairs(sources.load_all(sources.HELD_OUT, args.data_dir), VALIDATION_PAIRS, args.crop)
    synth = DamageSynthesizer()
    model = RestorationNet()
    if args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=False)
        model.load_state_dict(with_gender_and_age_inputs(state.get("model", state)))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    run = TrainingRun(args.run_dir, model, optimizer, cosine_schedule(optimizer, args.steps), vars(args))
    log.info("training", extra={"parameters": parameter_count(model), "steps": args.steps})

    face_photos, held_out_faces, critic = [], [], None
    if args.face_batch:
        if not (args.npm_dir / "model").is_dir():
            raise SystemExit(f"--face-batch needs face-api's weights in {args.npm_dir}: "
                             "npm install --prefix build/npm @vladmandic/face-api@1.7.15")
        analyzer = FaceAnalyzer(args.models_dir / "faces", RuntimeOptions())
        face_photos = faces.load_face_photos(args.npm_dir, args.data_dir, analyzer)
        held_out_faces = faces.held_out_photos(analyzer)
        critic = faces.AttributeCritic(args.npm_dir)

    def loss_at(step: int) -> torch.Tensor:
        inputs, target, damage = batch(photos, synth, args.crop, args.batch, args.tries, args.seed, step)
        loss = loss_fn(model(torch.from_numpy(inputs)), torch.from_numpy(target), torch.from_numpy(damage), args.tries)
        if not face_photos:
            return loss
        inputs, target, damage, details, boxes, asked = faces.batch(face_photos, args.crop, args.face_batch,
                                                                   args.tries, args.seed, step)
        source = torch.from_numpy(inputs)
        prediction = model(source)
        age, female = critic(prediction, source[:, :3], torch.from_numpy(details), torch.from_numpy(boxes),
                             args.critic_view)
        judged = faces.attribute_loss(age, female, asked)
        faithful = loss_fn(prediction, torch.from_numpy(target), torch.from_numpy(damage), args.tries)
        return loss + faithful * args.face_batch / args.batch + args.attribute_weight * judged.mean()

    def evaluate() -> dict[str, float]:
        figures = validate(model, validation, args.seed)
        if critic is not None:
            figures |= faces.condition_margins(model, critic, held_out_faces, args.crop)
        return figures

    # Without a cap one unlucky batch (a large tear under a strong fade) can blow the weights up.
    return train_steps(run, args.steps, loss_at, minutes=args.minutes, save_every=args.save_every,
                       clip_norm=GRADIENT_CLIP, evaluate=evaluate, desc="generator")


def main() -> None:
    setup_logging("info")
    train(parse_args())


if __name__ == "__main__":
    main()
