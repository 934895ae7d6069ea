"""Learned ("unet") vs classical damage detection: quality, false alarms, latency.

Prints, side by side:
- per-type IoU and F1 on the held-out synthetic set (held-out photos only,
  damage drawn with fixed seeds by the recipe `--damage` names: "real", the
  default, is what real scans show: crack networks, hairlines, foxing), the
  mean F1 and the learned/classical ratio;
- cracks and scratches (SCRATCH) alone: precision, recall and F1, strict and
  with a 1-pixel tolerance (training/detector/scoring.py says why); goal:
  F1 >= 0.80 and recall >= 0.80;
- whole-photo scores: fading-score error and black-and-white accuracy;
- false alarms on clean, undamaged photos (the held-out photos as shipped,
  and the tests' synthetic portrait); goal: <= 0.5% of pixels flagged;
- lettering painted into the held-out photos (signs, captions): the share of
  its pixels flagged, which the repair would erase;
- latency per megapixel of the network, ONNX Runtime vs torch eager, and of
  a whole 4096x4096 scan through the engine; goal: <= 10 s on 2 CPU cores.

Needs the photos once: python -m training.common.sources and
python -m training.common.colour_photos (the faces section is skipped without them).
Run: python -m bench.detector_bench [--write-manifest]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from revive.v1 import common_pb2

from bench.timing import median_seconds
from services.common.resize import shrink_to
from services.common.runtime import RuntimeOptions
from services.detector.engine import DAMAGE_TYPES, DetectorEngine
from services.detector.engines.classical import ClassicalDetector
from services.detector.engines.unet import UNetDetector
from services.detector.face_aware import FaceAwareDetector
from services.detector.service import DEFINITION
from services.vision import parsing
from services.vision.faces.analyzer import shared_face_analyzer
from tests.photos import portrait
from training.common import colour_photos, sources
from training.detector.dataset import DAMAGE, held_out_samples
from training.detector.export import MANIFEST_NAME, WEIGHTS_NAME, Probabilities, load_weights
from training.detector.scoring import Counts, SegmentationScore, flagged_fraction
from training.detector.synthetic_damage import REAL_SCAN, DamageParams, DamageSynthesizer

NAMES = {kind: common_pb2.DamageType.Name(kind) for kind in DAMAGE_TYPES}
#: Pixels a thin-damage match may be off by (training/detector/scoring.py).
TOLERANCE = 1
LOCAL_TYPES = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN)
#: Long side the portraits of the faces section are shrunk to: a small print's scan, a head a hundred pixels.
FACE_SIDE = 384
#: Every portrait cracked: crack networks always, hairlines often, no other strokes.
CRACKED = replace(REAL_SCAN, p_crack_network=1.0, p_hairlines=0.5, p_scratches=0.0)


def quality(engines: dict[str, DetectorEngine], samples: list) -> dict:
    scores = {name: SegmentationScore() for name in engines}
    tolerant = {name: SegmentationScore(tolerance=TOLERANCE) for name in engines}
    fading_error = {name: [] for name in engines}
    grey_right = {name: [] for name in engines}
    for sample in samples:
        for name, engine in engines.items():
            detection = engine.detect(sample.damaged)
            scores[name].add(detection.masks, sample.masks)
            tolerant[name].add(detection.masks, sample.masks)
            fading_error[name].append(abs(detection.fading_score - sample.fading_score))
            grey_right[name].append(detection.is_grayscale == sample.grayscale)
    print(f"\nHeld-out synthetic damage: {len(samples)} samples from {len(sources.HELD_OUT)} held-out photos")
    header = "".join(f" {name + ' IoU':>15} {name + ' F1':>14}" for name in engines)
    print(f"{'type':8}{header}")
    for kind in DAMAGE_TYPES:
        cells = "".join(f" {scores[n].counts[kind].iou:15.3f} {scores[n].counts[kind].f1:14.3f}" for n in engines)
        print(f"{NAMES[kind]:8}{cells}")
    figures: dict = {"samples": len(samples), "per_type": {}}
    for name in engines:
        figures["per_type"][name] = {NAMES[k]: {"iou": round(scores[name].counts[k].iou, 4),
                                                "f1": round(scores[name].counts[k].f1, 4)} for k in DAMAGE_TYPES}
        figures.setdefault("mean_f1_all_types", {})[name] = round(scores[name].mean_f1(), 4)
        figures.setdefault("mean_f1_scratch_tear_stain", {})[name] = round(scores[name].mean_f1(LOCAL_TYPES), 4)
        figures.setdefault("fading_score_mae", {})[name] = round(float(np.mean(fading_error[name])), 4)
        figures.setdefault("grayscale_accuracy", {})[name] = round(float(np.mean(grey_right[name])), 4)
    for label, key in (("mean F1, 4 types", "mean_f1_all_types"), ("mean F1, scratch/tear/stain", "mean_f1_scratch_tear_stain")):
        values = figures[key]
        ratio = values["unet"] / max(values["classical"], 1e-9)
        print(f"{label:28} " + "  ".join(f"{n} {v:.3f}" for n, v in values.items()) + f"  -> unet/classical {ratio:.1f}x")
    for label, key in (("fading score MAE", "fading_score_mae"), ("black-and-white accuracy", "grayscale_accuracy")):
        print(f"{label:28} " + "  ".join(f"{n} {v:.3f}" for n, v in figures[key].items()))
    print("\nCracks and scratches (SCRATCH): precision / recall / F1  (goal: F1 >= 0.80, recall >= 0.80)")
    for label, table in (("strict", scores), (f"{TOLERANCE} px tolerance", tolerant)):
        cells = []
        for name in engines:
            counts = table[name].counts[common_pb2.SCRATCH]
            cells.append(f"{name} {counts.precision:.3f} / {counts.recall:.3f} / {counts.f1:.3f}")
            figures.setdefault("scratch", {}).setdefault(label, {})[name] = {
                "precision": round(counts.precision, 4), "recall": round(counts.recall, 4), "f1": round(counts.f1, 4)}
        print(f"{label:18} " + "   ".join(cells))
    return figures


def false_alarms(engines: dict[str, DetectorEngine], data_dir: Path) -> dict:
    photos = {photo.path.rsplit("/", 1)[-1]: sources.load(photo, data_dir) for photo in sources.HELD_OUT}
    photos["synthetic portrait (tests)"] = portrait(480, 600)
    print("\nFalse alarms on clean, undamaged photos: share of pixels flagged as any damage")
    print(f"{'photo':28}" + "".join(f" {name:>10}" for name in engines))
    flagged = {name: [] for name in engines}
    for label, rgb in photos.items():
        row = []
        for name, engine in engines.items():
            flagged[name].append(flagged_fraction(engine.detect(rgb).masks))
            row.append(f" {flagged[name][-1] * 100:9.2f}%")
        print(f"{label:28}" + "".join(row))
    means = {name: round(float(np.mean(values)), 5) for name, values in flagged.items()}
    print(f"{'mean':28}" + "".join(f" {means[name] * 100:9.2f}%" for name in engines))
    return {"photos": list(photos), "mean_flagged_fraction": means,
            "per_photo": {name: [round(v, 5) for v in values] for name, values in flagged.items()}}


def lettering(engines: dict[str, DetectorEngine], data_dir: Path) -> dict:
    """Letters painted into the held-out photos (a sign, a caption: part of the photo, not damage): the share
    of their pixels flagged as damage. The detector once erased a shop sign's letters (old_d.png)."""
    letters = DamageParams(p_lettering=1.0, lettering_count=(2, 4), p_grayscale=0.0, p_global_fade=0.0,
                           p_optics_blur=0.0, p_grain=0.0, p_noise=0.0, p_jpeg=0.0, p_scan_blur=0.0,
                           p_halftone=0.0)
    synth, flagged = DamageSynthesizer(letters), {name: [] for name in engines}
    for index, photo in enumerate(sources.HELD_OUT):
        rgb = sources.load(photo, data_dir)
        lettered = synth(rgb, np.random.default_rng([2028, index]), undamaged=True).clean
        ink = np.abs(lettered.astype(np.int16) - rgb.astype(np.int16)).max(axis=2) > 40
        for name, engine in engines.items():
            damage = np.any([mask >= 128 for mask in engine.detect(lettered).masks.values()], axis=0)
            flagged[name].append(float(damage[ink].mean()))
    means = {name: round(float(np.mean(values)), 4) for name, values in flagged.items()}
    print("\nLettering in the photo (not damage): share of its pixels flagged  "
          + "  ".join(f"{name} {value * 100:.1f}%" for name, value in means.items()))
    return {"mean_flagged_share_of_letters": means}


def cracks_on_faces(engines: dict[str, DetectorEngine], portraits: list[np.ndarray], models_dir: Path,
                    described: str = "held-out portraits") -> dict:
    """Crack precision / recall / F1 (1 px tolerance) inside the faces of `portraits` and outside them, per
    engine and for the learned engine as served: faces analysed and their features spared (a speck on an
    eye is left; what is left of a crack there is a miss the repair keeps)."""
    options = RuntimeOptions(providers=("cpu",))
    analyzer = shared_face_analyzer(models_dir, options)
    engines = {**engines, "unet served": FaceAwareDetector(engines["unet"], analyzer,
                                                          parsing.shared_face_parser(models_dir, options))}
    synth = DamageSynthesizer(CRACKED)
    inside = {name: Counts(TOLERANCE) for name in engines}
    outside = {name: Counts(TOLERANCE) for name in engines}
    faces_seen = 0
    for index, photo in enumerate(portraits):
        small = shrink_to(photo, FACE_SIDE)
        faces = analyzer.analyze(small)
        if not faces:
            continue
        faces_seen += len(faces)
        on_face = np.zeros(small.shape[:2], bool)
        for face in faces:
            box = face.box
            on_face[max(0, int(box.y)):int(box.y + box.height), max(0, int(box.x)):int(box.x + box.width)] = True
        sample = synth(small, np.random.default_rng([2029, index]))
        truth = sample.masks[common_pb2.SCRATCH]
        for name, engine in engines.items():
            found = engine.detect(sample.damaged, analyze_faces=True).masks[common_pb2.SCRATCH]
            inside[name].add(np.where(on_face, found, 0), np.where(on_face, truth, 0))
            outside[name].add(np.where(on_face, 0, found), np.where(on_face, 0, truth))
    print(f"\nCracks across faces: {faces_seen} faces of {described} at {FACE_SIDE} px, crack networks drawn "
          f"over them; precision / recall / F1, {TOLERANCE} px tolerance")
    figures: dict = {"faces": faces_seen, "side": FACE_SIDE}
    for label, table in (("inside the faces", inside), ("outside them", outside)):
        cells = []
        for name in engines:
            counts = table[name]
            cells.append(f"{name} {counts.precision:.3f} / {counts.recall:.3f} / {counts.f1:.3f}")
            figures.setdefault(label, {})[name] = {"precision": round(counts.precision, 4),
                                                   "recall": round(counts.recall, 4), "f1": round(counts.f1, 4)}
        print(f"{label:18} " + "   ".join(cells))
    return figures


def held_out_faces(engines: dict[str, DetectorEngine], photos_dir: Path, models_dir: Path) -> dict | None:
    """cracks_on_faces on the held-out portraits, when they have been fetched."""
    missing = [p for p in colour_photos.PORTRAITS if not (photos_dir / p.path).exists()]
    if missing:
        print(f"\nCracks across faces: skipped, {len(missing)} portraits missing "
              f"(python -m training.common.colour_photos --dir {photos_dir})")
        return None
    return cracks_on_faces(engines, colour_photos.load_all(colour_photos.PORTRAITS, photos_dir), models_dir)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency(unet: UNetDetector, classical: ClassicalDetector, weights: Path, threads: int, repeats: int) -> dict:
    """The whole-scan figures first, so the peak-memory reading is the engine's, not torch's."""
    # Tiled from a small portrait: drawing a 4096x4096 one would itself set the memory peak.
    scan = np.tile(portrait(512, 512, seed=3), (8, 8, 1))
    before_mb = peak_rss_mb()
    scan_s = median_seconds(lambda: unet.detect(scan), max(1, repeats - 1))
    scan_peak_mb = peak_rss_mb()
    classical_s = median_seconds(lambda: classical.detect(scan), max(1, repeats - 1))
    side = 1024
    inputs = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    megapixels = side * side / 1e6
    ort_s = median_seconds(lambda: unet.model.run({"rgb": inputs}), repeats)
    torch.set_num_threads(threads)
    eager = Probabilities(load_weights(weights)).eval()
    with torch.inference_mode():
        tensor = torch.from_numpy(inputs)
        eager(tensor)
        torch_s = median_seconds(lambda: eager(tensor), repeats)
    print(f"\nLatency on {threads} CPU threads ({platform.processor() or platform.machine()}), median of {repeats}")
    print(f"network, per megapixel:   ONNX Runtime {ort_s / megapixels:.3f} s   torch eager {torch_s / megapixels:.3f} s"
          f"   -> ORT {torch_s / ort_s:.1f}x faster")
    print(f"4096x4096 scan, whole engine: unet {scan_s:.2f} s (goal <= 10 s)   classical {classical_s:.2f} s")
    print(f"process peak RSS: {before_mb:.0f} MB before the scan, {scan_peak_mb:.0f} MB after "
          f"(the 4096x4096 photo itself is 48 MB, its four masks 64 MB)")
    return {"threads": threads, "onnxruntime_s_per_mp": round(ort_s / megapixels, 4),
            "torch_eager_s_per_mp": round(torch_s / megapixels, 4), "unet_4096_scan_s": round(scan_s, 3),
            "classical_4096_scan_s": round(classical_s, 3),
            "peak_rss_mb_before_after_scan": [round(before_mb), round(scan_peak_mb)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=sources.DEFAULT_DIR)
    parser.add_argument("--portraits-dir", type=Path, default=colour_photos.DEFAULT_DIR,
                        help="the held-out portraits of the faces section")
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--damage", choices=sorted(DAMAGE), default="real", help="damage recipe of the held-out set")
    parser.add_argument("--models-dir", type=Path, help="another models directory (e.g. a checkpoint exported "
                                                         "with training.detector.export --out-dir)")
    parser.add_argument("--skip-latency", action="store_true", help="quality figures only (a quick mid-training look)")
    parser.add_argument("--write-manifest", action="store_true", help="record the figures in the model manifest")
    args = parser.parse_args()
    flags = ["--threads", str(args.threads), "--providers", "cpu"]
    config = DEFINITION.parse(flags + (["--models-dir", str(args.models_dir)] if args.models_dir else []))
    unet, classical = UNetDetector(config), ClassicalDetector(config)
    model_dir = config.models_dir / "detector"
    engines: dict[str, DetectorEngine] = {"classical": classical, "unet": unet}
    photos = sources.load_all(sources.HELD_OUT, args.data_dir)
    # Latency first: the process's peak memory then still reflects only the engines and the scan.
    speed = None if args.skip_latency else latency(unet, classical, model_dir / WEIGHTS_NAME, args.threads, args.repeats)
    figures = {
        "damage": args.damage,
        "quality": quality(engines, held_out_samples(photos, args.samples, args.crop, params=DAMAGE[args.damage])),
        "false_alarms": false_alarms(engines, args.data_dir),
        "lettering": lettering(engines, args.data_dir),
        "cracks_on_faces": held_out_faces(engines, args.portraits_dir, config.models_dir),
        "latency": speed,
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
        "command": f"python -m bench.detector_bench --samples {args.samples} --crop {args.crop} --threads {args.threads} "
                   f"--damage {args.damage}",
    }
    if args.write_manifest:
        path = model_dir / MANIFEST_NAME
        manifest = json.loads(path.read_text())
        manifest["eval"] = figures
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"\nfigures written to {path}")


if __name__ == "__main__":
    main()
