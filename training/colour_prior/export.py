"""Export the trained SceneColourNet, with its annealed-mean decoding, to the ONNX model the colourizer serves.

Height and width are dynamic (multiples of services/vision/scene_colour.MULTIPLE). The export is
checked against torch eager on a non-square batch before anything is
written; the manifest records provenance, the commands, the validation
figures of the checkpoint and what its spread means (calibrate.py), on the
validation photos (dataset.validation_photos, never trained on).

python -m training.colour_prior.export [--run-dir var/colour-prior-train]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from services.common.artifacts import sha256
from services.common.logs import setup_logging
from services.vision.scene_colour import MODEL_FILE
from training.colour_prior.calibrate import SpreadCalibration, calibrate
from training.colour_prior.dataset import GREY_CHROMA, VALIDATION_REGISTRY, validation_photos
from training.colour_prior.model import PLAUSIBLE, TEMPERATURE, AnnealedMean, SceneColourNet, ab_bins, parameter_count
from training.colour_prior.train import DEFAULT_RUN_DIR, validation_figures
from training.common import gcompris_photos as photos
from training.common import sources
from training.common.artifacts import REPO, shown
from training.common.loop import lineage
from training.common.onnx_export import export_checked, quiet_exporter

log = logging.getLogger(__name__)

OUT_DIR = REPO / "models" / MODEL_FILE.parent
WEIGHTS_NAME = "scene_colour.pt"
MANIFEST_NAME = "manifest.json"
#: Largest |ONNX - torch| accepted on the probe (ab units).
TOLERANCE = 0.05


def write_manifest(out_dir: Path, run_dir: Path, step: int, parameters: int, worst: float,
                   figures: dict[str, float], calibration: SpreadCalibration, more_dir: Path,
                   temperature: float) -> None:
    flags = ("steps", "batch", "crop", "lr", "seed", "threads", "precision")
    commands = [f"python -m training.colour_prior.train {' '.join(record.flags(flags))} --run-dir "
                f"{shown(record.args['run_dir'])}" for record in lineage(run_dir)]
    manifest = {
        "model": "SceneColourNet with annealed-mean decoding (training/colour_prior/model.py)",
        "files": {name: {"sha256": sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
                  for name in (MODEL_FILE.name, WEIGHTS_NAME)},
        "parameters": parameters,
        "trained_steps": step,
        "inputs": "planes: N x 2 x H x W float32, L / 100 - 0.5 and each row's height 0..1 "
                  "(services/vision/scene_colour.py: network_planes), H and W multiples of 8; tilt: N x 2 float32, "
                  f"nats per ab unit, the candidate's exponential tilt over the bins at least {PLAUSIBLE} as "
                  "probable as the mode (zeros: the best guess)",
        "outputs": f"colour: N x 3 x H/4 x W/4: CIELAB a, b (annealed mean of the tilted distribution, temperature "
                   f"{temperature}) and the untilted distribution's spread around its own annealed mean (ab units)",
        "onnx_vs_torch_max_abs_diff": worst,
        "license": "Apache-2.0 (code); weights trained only on the photos listed under data (their licences: "
                   "training/common/sources.py, models/detector/DATA_LICENSES.md)",
        "provenance": "trained from scratch on one CPU thread, bfloat16 autocast, no pretrained weights",
        "data": {
            "train": [p.path for p in sources.TRAIN + sources.EXTRA + sources.PORTRAITS],
            "train_gcompris": [{"path": p.path, "license": p.license, "author": p.author}
                               for p in photos.share(more_dir, validation=False)],
            "train_gcompris_source": f"{photos.PACKAGE} (training/common/gcompris_photos.py: credits from each "
                                     "activity's resource/README)",
            "train_note": f"photos whose mean chroma is below {GREY_CHROMA} ab (grey ones) are skipped",
            "validation": [p.path for p in VALIDATION_REGISTRY + photos.share(more_dir, validation=True)],
            "never_used": "the colour benchmark's photos (training/common/colour_photos.py, COLOUR_PHOTOS.md)",
        },
        "commands": ["python -m training.common.sources --dir var/detector-data",
                     "python -m training.common.gcompris_photos --dir var/colour-prior-data", *commands,
                     f"python -m training.colour_prior.export --run-dir {shown(run_dir)} --temperature {temperature}"],
        "eval": {"validation_whole_photos_at_256": figures,
                 "spread_calibration": {
                     "weights": calibration.weights,
                     "meaning": "services/generator/colourize.py SCENE_WEIGHTS must be these (spread, weight) "
                                "points; training/colour_prior/calibrate.py says how they are read off the table",
                     "table_columns": ["spread from", "to", "share of pixels", "network ab error", "grey ab error",
                                       "error at the chosen weight"],
                     "table": calibration.table},
                 "benchmark": "bench/colour_bench.py (README's figures table)"},
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    setup_logging("info")
    quiet_exporter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--more-dir", type=Path, default=photos.DEFAULT_DIR)
    parser.add_argument("--temperature", type=float, default=TEMPERATURE,
                        help="of the annealed mean: lower is more vivid and more often wrong")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    bins = ab_bins()
    net = SceneColourNet(len(bins))
    net.load_state_dict(state["model"])
    served = AnnealedMean(net, bins, args.temperature)
    tilts = (torch.zeros(1, 2), torch.tensor([[0.04, -0.03], [-0.05, 0.0]]))
    worst = export_checked(served, args.out_dir / MODEL_FILE.name, torch.rand(1, 2, 64, 64) - 0.5,
                           torch.rand(2, 2, 72, 120) - 0.5, "planes", ("colour",), TOLERANCE, {"tilt": tilts})
    torch.save(net.state_dict(), args.out_dir / WEIGHTS_NAME)
    validation = validation_photos(args.data_dir, args.more_dir)
    figures = validation_figures(net, validation, args.temperature)
    calibration = calibrate(served.eval(), validation)
    write_manifest(args.out_dir, args.run_dir, state["step"], parameter_count(net), worst, figures, calibration,
                   args.more_dir, args.temperature)
    log.info("exported", extra={"dir": str(args.out_dir), "step": state["step"], "max_abs_diff_vs_torch": worst,
                                "scene_weights": calibration.weights, **figures})


if __name__ == "__main__":
    main()
