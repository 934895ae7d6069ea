"""Learned vs Telea generator: restoration quality, no-harm, colourization, faces, options, latency.

Prints, side by side (learned, Telea, and the damaged input where it helps):
- held-out synthetic damage (held-out photos only, fixed seeds, the true masks
  as the detector's, colourize off): PSNR and SSIM inside the damaged regions
  and on the whole photo; goal: learned >= Telea + 2 dB PSNR inside the damage;
- no harm: SSIM of the output to an undamaged input, through the default
  detector's report on it (colourize off); goal: >= 0.97;
- colourization of the held-out colour photos turned grey: chroma PSNR (a, b
  of CIELAB) against the true colour and colourfulness (Hasler & Suesstrunk),
  against the grey input; diversity: mean |a,b| difference between seeds;
- faces (tests/data/faces + astronaut, damaged): identity similarity to the
  undamaged face per candidate, different-person similarities, the threshold;
- options, on the face photos turned black-and-white and colourized: agreement
  with the requested gender and age when the request is left out of the
  network's input, given to it, and given plus best of 8 ranked by `overall`;
  what asking changes (P(female), age); hair colour: mean CIELAB in the hair region
  and the change of the room behind it (bleeding);
- latency per candidate per megapixel on this machine's CPU, ONNX Runtime vs
  torch eager (network), and whole 1 MP and 4096x4096 candidates (peak RSS).

Needs the photos once: python -m training.common.sources
Run: python -m bench.generator_bench [--write-manifest] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from revive.v1 import common_pb2

from services.common.runtime import RuntimeOptions
from services.detector.engines.classical import ClassicalDetector
from services.generator import hair
from services.generator.engine import RestorationInput
from services.generator.engines.learned import LearnedGenerator
from services.generator.engines.telea import TeleaGenerator
from services.generator.planes import CHANNELS, rgb_to_lab
from services.generator.scoring import IDENTITY_THRESHOLD, CandidateScorer, main_face, matching_face
from services.vision.faces.analyzer import shared_face_analyzer, similarity
from training.common import sources
from training.detector.synthetic_damage import DamageSynthesizer
from training.generator.export import MANIFEST_NAME, WEIGHTS_NAME
from training.generator.model import RestorationNet

ROOT = Path(__file__).resolve().parents[1]
FACE_PHOTOS = sorted((ROOT / "tests" / "data" / "faces").glob("*.jpg"))
LOCAL = (common_pb2.SCRATCH, common_pb2.TEAR, common_pb2.STAIN)
DAMAGE_SEEDS = (0, 1)
QUALITY_SIDE = 640
#: Gender and age requests measured, each against the other: far apart, so that following them shows.
REQUESTS = ((common_pb2.FEMALE, 25), (common_pb2.MALE, 65))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM per pixel of two uint8 images (Wang et al. 2004: Gaussian 11, sigma 1.5), channels averaged."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ssim.mean(axis=2) if ssim.ndim == 3 else ssim


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = float(diff[where].mean() if where is not None else diff.mean())
    return 10 * np.log10(255 ** 2 / max(mse, 1e-10))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) M: 0 for grey, ~30-60 for ordinary colour photos."""
    r, g, b = (rgb[..., c].astype(np.float64) for c in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def chroma(rgb: np.ndarray) -> np.ndarray:
    """a, b of CIELAB in 0..255 units (OpenCV's 8-bit Lab), for chroma PSNR."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[..., 1:]


def request(rgb: np.ndarray, masks: dict[int, np.ndarray], grayscale: bool, **options: object) -> RestorationInput:
    return RestorationInput(rgb, masks, common_pb2.DamageReport(is_grayscale=grayscale),
                            common_pb2.RestoreOptions(**options))


def held_out(side: int = QUALITY_SIDE) -> list[np.ndarray]:
    return sources.load_all(sources.HELD_OUT, sources.DEFAULT_DIR, max_side=side)


def restoration(engines: dict, photos: list[np.ndarray]) -> dict:
    synth = DamageSynthesizer()
    totals: dict[str, dict[str, list[float]]] = {name: {} for name in ["input", *engines]}
    diversity: list[float] = []
    for (index, photo), seed in itertools.product(enumerate(photos), DAMAGE_SEEDS):
        sample = synth(photo, np.random.default_rng([99, index, seed]))
        damaged = np.max([sample.masks[k] for k in LOCAL], axis=0) >= 128
        req = request(sample.damaged, sample.masks, sample.grayscale, colorize=common_pb2.COLORIZE_OFF)
        outputs = {"input": sample.damaged, **{name: e.generate(req, seed) for name, e in engines.items()}}
        if damaged.any():
            other = engines["learned"].generate(req, seed + 100)
            diversity.append(float(np.abs(other.astype(float) - outputs["learned"])[damaged].mean()))
        for name, out in outputs.items():
            figures = totals[name]
            figures.setdefault("psnr_all", []).append(psnr(out, sample.clean))
            figures.setdefault("ssim_all", []).append(float(ssim_map(out, sample.clean).mean()))
            if damaged.any():
                figures.setdefault("psnr_damaged", []).append(psnr(out, sample.clean, damaged))
                figures.setdefault("ssim_damaged", []).append(float(ssim_map(out, sample.clean)[damaged].mean()))
    means = {name: {k: float(np.mean(v)) for k, v in figures.items()} for name, figures in totals.items()}
    return means | {"learned_seed_diversity_damaged": float(np.mean(diversity))}


def no_harm(engines: dict, photos: list[np.ndarray]) -> dict:
    """SSIM of each engine's output to an intact input, given what the default detector reports on it
    (its false alarms included), as the pipeline would run.

    Colourize is off: colouring a photo the detector calls black-and-white changes every pixel
    on purpose, and colourization has its own figures below.
    """
    detector = ClassicalDetector()
    detections = [detector.detect(photo) for photo in photos]
    results = {}
    for name, engine in engines.items():
        scores = [float(ssim_map(engine.generate(
                      request(photo, d.masks, d.is_grayscale, colorize=common_pb2.COLORIZE_OFF), 0), photo).mean())
                  for photo, d in zip(photos, detections)]
        results[name] = {"ssim_mean": float(np.mean(scores)), "ssim_min": float(np.min(scores))}
    return results


def colourization(engine: LearnedGenerator, photos: list[np.ndarray], seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    colour = [p for p in photos if colourfulness(p) > 5]
    rows = []
    for photo in colour:
        grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        outs = [engine.generate(request(grey, {}, True), seed) for seed in seeds]
        diversity = np.mean([np.abs(chroma(a).astype(float) - chroma(b)).mean() for a, b in itertools.combinations(outs, 2)])
        rows.append({"chroma_psnr_output": np.mean([psnr(chroma(o), chroma(photo)) for o in outs]),
                     "chroma_psnr_grey_input": psnr(chroma(grey), chroma(photo)),
                     "colourfulness_output": np.mean([colourfulness(o) for o in outs]),
                     "colourfulness_grey_input": colourfulness(grey),
                     "colourfulness_truth": colourfulness(photo),
                     "seed_diversity_ab": diversity})
    # Means hide the split: a near-grey photo (a storm sky) loses more by any colour than others gain.
    better = sum(row["chroma_psnr_output"] > row["chroma_psnr_grey_input"] for row in rows)
    return ({key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
            | {"photos": len(colour), "photos_closer_than_grey": int(better)})


def face_photos() -> list[np.ndarray]:
    photos = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in FACE_PHOTOS]
    photos.append(sources.load(sources.HELD_OUT[0], sources.DEFAULT_DIR, max_side=512))  # astronaut
    return [cv2.resize(p, None, fx=min(1.0, 1024 / max(p.shape[:2])), fy=min(1.0, 1024 / max(p.shape[:2])),
                       interpolation=cv2.INTER_AREA) for p in photos]


def faces(engines: dict, photos: list[np.ndarray], analyzer, seeds: tuple[int, ...] = (0, 1, 2, 3)) -> dict:
    """Identity similarity of each candidate's face to the undamaged photo's, and between different people."""
    synth = DamageSynthesizer()
    per_engine: dict[str, list[list[float]]] = {name: [] for name in engines}
    everyone = []
    for index, photo in enumerate(photos):
        found = [f for f in analyzer.analyze(photo) if len(f.embedding)]
        everyone += [(index, f) for f in found]
        reference = main_face(found)
        if reference is None:
            continue
        sample = synth(photo, np.random.default_rng([7, index]))
        report = common_pb2.DamageReport(is_grayscale=sample.grayscale, faces=[reference])
        req = RestorationInput(sample.damaged, sample.masks, report, common_pb2.RestoreOptions())
        for name, engine in engines.items():
            scorer = CandidateScorer(analyzer, list(report.faces), req.options)
            per_engine[name].append([scorer.score(engine.generate(req, s)).identity_similarity for s in seeds])
    different = [similarity(a, b) for (_, a), (_, b) in itertools.combinations(everyone, 2)]
    scores = [s for rows in per_engine.values() for row in rows for s in row]
    same = [s for s in scores if s > 0]  # 0 = the analyser found no face there in the candidate
    return {"per_candidate": {name: [[round(s, 3) for s in row] for row in rows] for name, rows in per_engine.items()},
            "same_person_min": float(min(same)), "same_person_p5": float(np.percentile(same, 5)),
            "same_person_mean": float(np.mean(same)), "face_lost": f"{len(scores) - len(same)} of {len(scores)}",
            "different_people_max": float(max(different)), "different_people_p95": float(np.percentile(different, 95)),
            "different_people_mean": float(np.mean(different)), "faces": len(everyone),
            "threshold_in_use": IDENTITY_THRESHOLD}


def female_probability(face: common_pb2.Face) -> float:
    return face.gender_confidence if face.gender == common_pb2.FEMALE else 1.0 - face.gender_confidence


def options_agreement(engine: LearnedGenerator, photos: list[np.ndarray], analyzer, seeds: int = 8) -> dict:
    """What gender and age requests do to black-and-white versions of the face photos, colourized.

    That is where the network chooses tone and colour; on an intact colour
    photo it changes nothing by design. Per request (`REQUESTS`), whether the
    analyser sees the requested gender, and the age within 10 years: the
    request left out of the network's input (all ranking had before the
    network took conditions), given to it (first seed), and the best of
    `seeds` ranked. Margins, same seed: the analyser's P(female) asked female
    minus asked male, and its age asked old minus asked young.
    """
    hits: dict[str, list[bool]] = {f"{what}_{how}": [] for what in ("gender", "age")
                                   for how in ("unconditioned", "first", "ranked")}
    female, age = {}, {}
    for index, photo in enumerate(photos):
        grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        reference = main_face(analyzer.analyze(grey))
        if reference is None:
            continue
        report = common_pb2.DamageReport(is_grayscale=True, faces=[reference])
        unasked = engine.generate(RestorationInput(grey, {}, report, common_pb2.RestoreOptions()), 0)
        for gender, years in REQUESTS:
            options = common_pb2.RestoreOptions(gender=gender, age=years)
            scorer = CandidateScorer(analyzer, list(report.faces), options)
            images = [engine.generate(RestorationInput(grey, {}, report, options), seed) for seed in range(seeds)]
            candidates = [scorer.score(image) for image in images]
            best = max(candidates, key=lambda s: s.overall)
            for label, scores in (("unconditioned", scorer.score(unasked)), ("first", candidates[0]), ("ranked", best)):
                hits[f"gender_{label}"].append(scores.gender_agreement > 0.5)
                hits[f"age_{label}"].append(scores.age_agreement > np.exp(-0.5))
            face = matching_face(reference, list(analyzer.analyze(images[0])))
            if face is not None:
                female[index, gender], age[index, gender] = female_probability(face), face.age
    # REQUESTS asks female and young, then male and old: margins are second minus first.
    (first, _), (second, _) = REQUESTS
    both = [i for i in {i for i, _ in female} if (i, first) in female and (i, second) in female]
    return ({key: float(np.mean(values)) for key, values in hits.items()}
            | {"requests": len(hits["gender_first"]),
               "female_probability_margin": float(np.mean([female[i, first] - female[i, second] for i in both])),
               "age_margin_years": float(np.mean([age[i, second] - age[i, first] for i in both])),
               "requests_compared": [f"{common_pb2.Gender.Name(g)} {a}" for g, a in REQUESTS]})


def hair_effect(engine: LearnedGenerator, photo: np.ndarray, analyzer) -> dict:
    """Per requested colour: mean CIELAB (L, a, b) of the main face's hair, and how much the room behind changed.

    The hair is weighted as the engine weights it; "background" is the head
    window where the person mask says no person (< 0.1): mean |RGB| change
    there against auto (0 = no bleeding).
    """
    found = analyzer.analyze(photo)
    face = main_face(found)
    rows, cols = hair.head_window(face, *photo.shape[:2])
    person = engine.segmenter.mask(photo)[rows, cols]
    weight = hair.hair_weight(rgb_to_lab(photo[rows, cols]), photo[rows, cols], face, rows, cols, person)
    background = person < 0.1

    def restored(colour: int) -> np.ndarray:
        options = common_pb2.RestoreOptions(hair_color=colour)
        report = common_pb2.DamageReport(faces=found)
        return engine.generate(RestorationInput(photo, {}, report, options), 0)[rows, cols]

    auto = restored(common_pb2.HAIR_COLOR_UNSPECIFIED).astype(np.float32)
    results = {}
    for colour in (common_pb2.HAIR_COLOR_UNSPECIFIED, *hair.TARGETS):
        rgb = restored(colour)
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
        mean = (lab * weight[..., None]).sum(axis=(0, 1)) / weight.sum()
        results[common_pb2.HairColor.Name(colour)] = {
            "hair_lab": [round(float(v), 1) for v in mean],
            "background_change": round(float(np.abs(rgb.astype(np.float32) - auto)[background].mean()), 2)}
    return results


def timed(action: Callable[[], object], repeats: int = 3) -> float:
    action()
    start = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - start) / repeats


def latency(learned: LearnedGenerator, telea: TeleaGenerator, weights: Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    model = RestorationNet()
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    planes = np.random.default_rng(0).standard_normal((1, CHANNELS, 288, 384)).astype(np.float32)
    with torch.no_grad():
        eager = timed(lambda: model(torch.from_numpy(planes)))
    onnx = timed(lambda: learned.model.run({"planes": planes}))
    rgb = cv2.resize(held_out()[0], (1152, 864), interpolation=cv2.INTER_CUBIC)
    sample = DamageSynthesizer()(rgb, np.random.default_rng(5))
    req = request(sample.damaged, sample.masks, sample.grayscale)
    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    figures = {"network_288x384_onnxruntime_s": onnx, "network_288x384_torch_eager_s": eager,
               "torch_over_onnxruntime": eager / onnx,
               "learned_s_per_candidate_per_mp": timed(lambda: learned.generate(req, 1)) / megapixels,
               "telea_s_per_candidate_per_mp": timed(lambda: telea.generate(req, 1)) / megapixels}
    big = cv2.resize(rgb, (4096, 4096), interpolation=cv2.INTER_CUBIC)
    masks = {k: cv2.resize(v, (4096, 4096), interpolation=cv2.INTER_NEAREST) for k, v in sample.masks.items()}
    start = time.perf_counter()
    learned.generate(request(big, masks, sample.grayscale), 1)
    figures["learned_4096x4096_s"] = time.perf_counter() - start
    figures["peak_rss_mb_after_4096"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def report(figures: dict) -> None:
    print("\n== held-out synthetic damage (colourize off, true masks) ==")
    print(f"{'':8s} {'PSNR dmg':>9s} {'SSIM dmg':>9s} {'PSNR all':>9s} {'SSIM all':>9s}")
    for name, f in figures["restoration"].items():
        if not isinstance(f, dict):
            continue
        print(f"{name:8s} {f['psnr_damaged']:9.2f} {f['ssim_damaged']:9.4f} {f['psnr_all']:9.2f} {f['ssim_all']:9.4f}")
    r = figures["restoration"]
    print(f"learned - telea inside damage: {r['learned']['psnr_damaged'] - r['telea']['psnr_damaged']:+.2f} dB (goal >= +2)")
    print(f"learned seed diversity inside damage (mean |RGB| difference, two seeds): "
          f"{r['learned_seed_diversity_damaged']:.2f}")
    print("\n== no harm on clean photos: SSIM(output, input), goal >= 0.97 ==")
    for name, f in figures["no_harm"].items():
        print(f"{name:8s} mean {f['ssim_mean']:.4f}  min {f['ssim_min']:.4f}")
    c = figures["colourization"]
    print("\n== colourization (grey held-out colour photos) ==")
    print(f"chroma PSNR  learned {c['chroma_psnr_output']:.2f} dB   grey input {c['chroma_psnr_grey_input']:.2f} dB   "
          f"(closer than grey on {c['photos_closer_than_grey']} of {c['photos']} photos)")
    print(f"colourfulness learned {c['colourfulness_output']:.1f}   grey input {c['colourfulness_grey_input']:.1f}   "
          f"truth {c['colourfulness_truth']:.1f}")
    print(f"seed diversity (mean |ab| difference between candidates, 8-bit Lab): {c['seed_diversity_ab']:.2f}")
    f = figures["faces"]
    print("\n== identity similarity per candidate (to the undamaged face) ==")
    for name, rows in f["per_candidate"].items():
        print(f"{name:8s} {rows}")
    print(f"same person: min {f['same_person_min']:.3f} p5 {f['same_person_p5']:.3f} mean {f['same_person_mean']:.3f} "
          f"(face not found: {f['face_lost']}); different people ({f['faces']} faces): max "
          f"{f['different_people_max']:.3f} p95 {f['different_people_p95']:.3f} mean {f['different_people_mean']:.3f}; "
          f"threshold in use {f['threshold_in_use']}")
    o = figures["options"]
    print("\n== option agreement (analyser agrees with the request) ==")
    print(f"black-and-white photos colourized, {o['requests']} requests ({', '.join(o['requests_compared'])}):")
    for what, label in (("gender", "gender"), ("age", "age within 10 y")):
        print(f"{label:16s} request not given to the network {o[what + '_unconditioned']:.2f}   given, first seed "
              f"{o[what + '_first']:.2f}   given, best of 8 ranked {o[what + '_ranked']:.2f}")
    print("what asking changes (same seed): P(female) asked female - asked male "
          f"{o['female_probability_margin']:+.3f}; "
          f"age asked old - asked young {o['age_margin_years']:+.1f} years")
    for photo, colours in figures["hair"].items():
        print(f"hair, {photo}: mean CIELAB of the hair / mean |RGB| change of the room behind, by requested colour")
        print("  " + "  ".join(f"{name.lower()} {tuple(f['hair_lab'])} / {f['background_change']:.2f}"
                               for name, f in colours.items()))
    lat = figures["latency"]
    print(f"\n== latency ({lat['threads']} threads) ==")
    print(f"network 288x384: onnxruntime {lat['network_288x384_onnxruntime_s'] * 1000:.0f} ms, torch eager "
          f"{lat['network_288x384_torch_eager_s'] * 1000:.0f} ms ({lat['torch_over_onnxruntime']:.2f}x)")
    print(f"per candidate per MP: learned {lat['learned_s_per_candidate_per_mp']:.2f} s, "
          f"telea {lat['telea_s_per_candidate_per_mp']:.2f} s; 4096x4096: {lat['learned_4096x4096_s']:.1f} s, "
          f"peak RSS {lat['peak_rss_mb_after_4096']:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--write-manifest", action="store_true", help="store the figures in the model's manifest")
    args = parser.parse_args(argv)
    options = RuntimeOptions(providers=("cpu",), threads=args.threads)
    learned = LearnedGenerator(models_dir=args.models_dir, options=options)
    telea = TeleaGenerator()
    engines = {"learned": learned, "telea": telea}
    analyzer = shared_face_analyzer(args.models_dir, options)
    photos, people = held_out(), face_photos()
    figures = {
        "restoration": restoration(engines, photos),
        "no_harm": no_harm(engines, photos),
        "colourization": colourization(learned, photos),
        "faces": faces(engines, people, analyzer),
        "options": options_agreement(learned, people, analyzer),
        # A dark room behind dark hair (sample1), and brown hair before a light wall (astronaut).
        "hair": {"sample1": hair_effect(learned, people[0], analyzer),
                 "astronaut": hair_effect(learned, people[-1], analyzer)},
        "latency": latency(learned, telea, args.models_dir / "generator" / WEIGHTS_NAME, args.threads)
        | {"threads": args.threads},
    }
    report(figures)
    if args.write_manifest:
        path = args.models_dir / "generator" / MANIFEST_NAME
        manifest = json.loads(path.read_text())
        manifest["eval"] = figures
        path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
