"""The shared training loop: a resumed run ends where an uninterrupted one does; runs know their lineage."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.common.loop import TrainingRun, cosine_schedule, lineage, train_steps

STEPS = 6


def make_run(run_dir: Path) -> TrainingRun:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    return TrainingRun(run_dir, model, optimizer, cosine_schedule(optimizer, STEPS, warmup=2))


def loss_for(run: TrainingRun):
    def loss_at(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(step)  # batches depend only on the step
        x = torch.randn(16, 4, generator=generator)
        # Dropout-like noise from the global RNG, which the checkpoint must carry over.
        noise = torch.rand(16, 1) * 0.01
        return ((run.model(x) - x.sum(dim=1, keepdim=True) - noise) ** 2).mean()
    return loss_at


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    straight = make_run(tmp_path / "straight")
    assert train_steps(straight, STEPS, loss_for(straight), save_every=2, desc="straight")

    # First half, then a fresh process's view: new objects, same directory.
    first = make_run(tmp_path / "paused")
    train_steps(first, STEPS // 2, loss_for(first), save_every=100, desc="first half")
    resumed = make_run(tmp_path / "paused")
    assert train_steps(resumed, STEPS, loss_for(resumed), save_every=100, desc="second half")

    assert resumed.step == straight.step == STEPS
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.load(resumed.weights, weights_only=True).keys() == straight.model.state_dict().keys()


def test_history_records_loss_and_evaluation(tmp_path):
    run = make_run(tmp_path / "run")
    train_steps(run, STEPS, loss_for(run), save_every=3, evaluate=lambda: {"probe": 1.5}, desc="history")
    records = [json.loads(line) for line in (run.run_dir / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6]
    assert all(r["probe"] == 1.5 and r["loss"] > 0 for r in records)


def test_minutes_budget_pauses_with_a_checkpoint(tmp_path):
    run = make_run(tmp_path / "run")
    assert not train_steps(run, STEPS, loss_for(run), minutes=1e-9, desc="no time")
    assert run.checkpoint.exists() and not run.weights.exists()


def test_pause_at_stops_on_that_step(tmp_path):
    run = make_run(tmp_path / "run")
    assert not train_steps(run, STEPS, loss_for(run), pause_at=4, desc="pause")
    assert run.step == 4 and torch.load(run.checkpoint, weights_only=False)["step"] == 4


def test_lineage_follows_init_back_to_the_first_run(tmp_path):
    base = make_run(tmp_path / "base")
    base.args = {"steps": STEPS, "lr": 0.05, "init": None}
    train_steps(base, STEPS, loss_for(base), desc="base")
    tuned = make_run(tmp_path / "tuned")
    tuned.args = {"steps": 2, "lr": 0.01, "init": base.checkpoint}
    train_steps(tuned, 4, loss_for(tuned), pause_at=2, desc="tuned")

    records = lineage(tmp_path / "tuned")
    assert [record.step for record in records] == [STEPS, 2]
    assert records[0].flags(("lr", "init", "missing")) == ["--lr 0.05"]
    assert records[1].flags(("steps", "init")) == ["--steps 2", f"--init {base.checkpoint}"]
