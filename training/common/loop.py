"""The seeded, resumable training loop behind every model Revive trains.

Training here runs for hours on two CPU cores and gets interrupted, so a run
must stop on a time budget, checkpoint atomically, and continue with exactly
the batches it would have drawn: batches are a pure function of (seed, step),
and the checkpoint holds the model, optimiser, schedule, step and torch RNG.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


def add_run_flags(parser: argparse.ArgumentParser, *, steps: int, batch: int, crop: int, crop_help: str, lr: float,
                  seed: int, save_every: int, threads: int = 1) -> None:
    """The flags every training script has, with that model's defaults."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--crop", type=int, default=crop, help=crop_help)
    parser.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=seed, help="batches are a function of (seed, step)")
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--minutes", type=float, default=0, help="stop (and checkpoint) after this long; 0 = no limit")
    parser.add_argument("--save-every", type=int, default=save_every, help="steps between checkpoints")


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, floor: float = 0.05,
                    warmup: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to `floor` x the base rate at `steps`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainingRun:
    """One run directory: checkpoint.pt, loss.jsonl and, when finished, model.pt."""

    run_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    args: dict = field(default_factory=dict)
    step: int = 0

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        return self.run_dir / "model.pt"

    def resume(self) -> None:
        """Continue from the checkpoint when there is one."""
        if not self.checkpoint.exists():
            return
        state = torch.load(self.checkpoint, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.step = state["step"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed", extra={"run_dir": str(self.run_dir), "step": self.step})

    def save(self) -> None:
        """Write the checkpoint through a temporary file, so a kill never leaves half of one."""
        partial = self.checkpoint.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(), "step": self.step, "torch_rng": torch.get_rng_state(),
                    "args": {key: str(value) for key, value in self.args.items()}}, partial)
        partial.replace(self.checkpoint)


def train_steps(run: TrainingRun, steps: int, loss_at: Callable[[int], torch.Tensor], *, minutes: float = 0,
                save_every: int = 200, clip_norm: float | None = None, pause_at: int | None = None,
                evaluate: Callable[[], dict[str, float]] | None = None, desc: str = "train") -> bool:
    """Optimise until `steps` or `minutes` runs out; True when the run is finished.

    `loss_at(step)` draws the batch for that step and returns its loss. Every
    `save_every` steps the running loss (and `evaluate()`, if given) goes to
    loss.jsonl and the checkpoint is written; a finished run also writes model.pt.
    `pause_at` stops at that step as `minutes` would, but reproducibly.
    """
    run.run_dir.mkdir(parents=True, exist_ok=True)
    run.resume()
    deadline = time.monotonic() + minutes * 60 if minutes else math.inf
    run.model.train()
    running: float | None = None
    with tqdm(total=steps, initial=run.step, desc=desc, unit="step") as bar, \
            (run.run_dir / "loss.jsonl").open("a") as history:
        while run.step < min(steps, pause_at or steps) and time.monotonic() < deadline:
            loss = loss_at(run.step)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip_norm)
            run.optimizer.step()
            run.schedule.step()
            run.step += 1
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
            if run.step % save_every == 0 or run.step == steps:
                record = {"step": run.step, "loss": round(running, 5)}
                if evaluate:
                    record |= evaluate()
                    run.model.train()
                history.write(json.dumps(record) + "\n")
                history.flush()
                run.save()
    run.save()
    finished = run.step >= steps
    if finished:
        torch.save(run.model.state_dict(), run.weights)
        log.info("finished", extra={"weights": str(run.weights), "steps": run.step})
    else:
        log.info("paused; rerun the same command to resume", extra={"step": run.step, "of": steps})
    return finished


@dataclass(frozen=True)
class RunRecord:
    """What a finished or paused run's checkpoint says about how it was made."""

    args: dict[str, str]
    step: int

    def value(self, name: str) -> str | None:
        """The run's value for flag `name`; None when it was not given (checkpoints store None as "None")."""
        value = self.args.get(name)
        return None if value in (None, "None") else value

    @property
    def init(self) -> Path | None:
        """The weights the run started from (`--init`), if any."""
        value = self.value("init")
        return Path(value) if value else None

    def flags(self, names: tuple[str, ...]) -> list[str]:
        """`--name value` for each of `names` the run was given a value for."""
        return [f"--{name.replace('_', '-')} {self.value(name)}" for name in names if self.value(name) is not None]


def lineage(run_dir: Path) -> list[RunRecord]:
    """A run and every run it started from (`--init`), earliest first: what a manifest needs to reproduce it."""
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    record = RunRecord(state["args"], state["step"])
    return (lineage(record.init.parent) if record.init else []) + [record]
