"""The GPU check's CPU path runs here, so it works the first time a GPU is lent."""

from __future__ import annotations

from bench import gpu_check


def test_every_model_gets_a_row_and_missing_providers_say_so(tmp_path):
    table = gpu_check.main(["--quick", "--out", str(tmp_path / "table.md")])
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert len(rows) == len(gpu_check.cases()) + 1  # every model and the end-to-end photo
    for row in rows:
        cpu, cuda, tensorrt = (cell.strip() for cell in row.strip("|").split("|")[1:])
        assert cpu.endswith(" ms") or cpu.endswith(" s"), row
        assert cuda.startswith("n/a") and tensorrt.startswith("n/a"), row  # never timed as if it had run there
    assert (tmp_path / "table.md").read_text() == table


def test_the_torch_path_times_the_learned_networks(tmp_path):
    table = gpu_check.main(["--torch", "--quick", "--out", str(tmp_path / "torch.md")])
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| network")]
    assert {row.split(",")[0].strip("| ") for row in rows} == {"detector unet", "upscaler fidelity x4", "generator"}
