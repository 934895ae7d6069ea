"""The learned generator engine with its real ONNX model: fills, faithfulness, seeds, colour, hair, runtime."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from revive.v1 import common_pb2

from services.common import resize
from services.common.resize import upsample_rows
from services.common.runtime import RuntimeOptions
from services.generator import compose, hair
from services.generator.engine import RestorationInput
from services.generator.engines.learned import LearnedGenerator
from services.generator.planes import rgb_to_lab
from services.generator.scoring import main_face
from services.vision import parsing
from tests.photos import portrait, scratched
from training.tensorrt.build import EXIT_NO_GPU
from training.tensorrt.build import main as build_engine

MODELS = Path(__file__).resolve().parents[2] / "models"
FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


@pytest.fixture(scope="module")
def engine() -> LearnedGenerator:
    generator = LearnedGenerator(models_dir=MODELS, options=RuntimeOptions(providers=("tensorrt", "cuda", "cpu"), threads=1))
    generator.warm_up()
    return generator


def restore(engine: LearnedGenerator, rgb: np.ndarray, masks: dict | None = None, seed: int = 0,
            grayscale: bool = False, **options: object) -> np.ndarray:
    request = RestorationInput(rgb, masks or {}, common_pb2.DamageReport(is_grayscale=grayscale),
                               common_pb2.RestoreOptions(**options))
    return engine.generate(request, seed)


def test_falls_back_to_cpu_without_tensorrt_or_cuda(engine):
    assert engine.provider == "CPUExecutionProvider"
    assert engine.model.session.get_providers() == ["CPUExecutionProvider"]


def test_tensorrt_build_refuses_cleanly_without_a_gpu(capsys):
    assert build_engine(["--models-dir", str(MODELS)]) == EXIT_NO_GPU
    assert "cannot build a TensorRT engine here" in capsys.readouterr().err


def test_fills_scratches_and_leaves_the_rest_alone(engine):
    clean = portrait(360, 450)
    damaged, mask = scratched(clean, count=4)
    restored = restore(engine, damaged, {common_pb2.SCRATCH: mask})
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    inside, outside = mask > 0, mask == 0
    error = lambda image, where: np.abs(image.astype(float) - clean)[where].mean()
    assert error(restored, inside) < 0.3 * error(damaged, inside)
    assert error(restored, outside) < 6.0


def test_same_seed_same_image_other_seed_other_image(engine):
    damaged, mask = scratched(portrait(240, 300))
    grey = np.repeat(cv2.cvtColor(damaged, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    first = restore(engine, grey, {common_pb2.SCRATCH: mask}, seed=1, grayscale=True)
    assert np.array_equal(first, restore(engine, grey, {common_pb2.SCRATCH: mask}, seed=1, grayscale=True))
    assert not np.array_equal(first, restore(engine, grey, {common_pb2.SCRATCH: mask}, seed=2, grayscale=True))


def test_colourizes_black_and_white_only_when_asked(engine):
    grey = np.repeat(cv2.cvtColor(portrait(240, 300), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    coloured = restore(engine, grey, grayscale=True)  # auto: a black-and-white photo is colourized
    chroma = np.abs(rgb_to_lab(coloured)[..., 1:]).mean()
    assert chroma > 0.01
    kept = restore(engine, grey, grayscale=True, colorize=common_pb2.COLORIZE_OFF)
    assert np.array_equal(kept[..., 0], kept[..., 1]) and np.array_equal(kept[..., 1], kept[..., 2])
    # The full-resolution lightness is the photo's (tone-corrected), its fine detail included.
    def detail(rgb: np.ndarray) -> np.ndarray:
        lightness = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[..., 0].astype(float)
        return (lightness - cv2.GaussianBlur(lightness, (0, 0), 2.0)).ravel()

    assert np.corrcoef(detail(coloured), detail(grey))[0, 1] > 0.9


def test_strength_zero_keeps_the_photo(engine):
    photo = portrait(200, 240)
    assert np.abs(restore(engine, photo, strength=0.0).astype(int) - photo).max() <= 2


def lightness_range(rgb: np.ndarray) -> float:
    low, high = np.percentile(rgb_to_lab(rgb)[..., 0] * 100, compose.LEVELS_PERCENTILES)
    return float(high - low)


def test_a_faded_print_gets_its_range_back_and_a_flat_subject_keeps_its_own(engine):
    """A print faded to a third of its contrast comes back with its lightness range, as far as `strength` asks;
    the same pixels the detector does not call faded (a flat subject: fog, a wall) are not stretched."""
    grey = cv2.cvtColor(portrait(360, 450), cv2.COLOR_RGB2GRAY).astype(np.float32)
    faded = np.repeat(np.clip(200 + (grey - 200) * 0.3, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    assert lightness_range(faded) < 0.6 * compose.LEVELS_RANGE

    def restored(fading_score: float, **options: object) -> np.ndarray:
        report = common_pb2.DamageReport(is_grayscale=True, fading_score=fading_score)
        options.setdefault("colorize", common_pb2.COLORIZE_OFF)
        return engine.generate(RestorationInput(faded, {}, report, common_pb2.RestoreOptions(**options)), 0)

    assert lightness_range(restored(0.6, strength=1.0)) > 0.95 * compose.LEVELS_RANGE
    assert lightness_range(faded) < lightness_range(restored(0.6, strength=0.5)) < 0.9 * compose.LEVELS_RANGE
    assert np.abs(restored(0.6, strength=0.0).astype(int) - faded).max() <= 2
    assert np.abs(restored(0.1).astype(int) - faded).max() <= 2


def test_hair_colour_moves_the_hair_region(engine):
    photo = cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (960, 640), interpolation=cv2.INTER_AREA)
    face = main_face(engine.analyzer.analyze(photo))
    rows, cols = hair.head_window(face, *photo.shape[:2])
    person = engine.segmenter.mask(photo)[rows, cols]  # measured on her hair, not on the dark room behind it
    weight = hair.hair_weight(rgb_to_lab(photo[rows, cols]), photo[rows, cols], face, rows, cols, person)

    def mean_lab(colour: int) -> np.ndarray:
        request = RestorationInput(photo, {}, common_pb2.DamageReport(faces=[face]),
                                   common_pb2.RestoreOptions(hair_color=colour))
        lab = rgb_to_lab(engine.generate(request, 0)[rows, cols]) * [100, 110, 110]
        return (lab * weight[..., None]).sum(axis=(0, 1)) / weight.sum()

    black, blond, red = mean_lab(common_pb2.BLACK), mean_lab(common_pb2.BLOND), mean_lab(common_pb2.RED)
    assert blond[0] > black[0] + 15  # lighter
    assert blond[2] > black[2] + 10  # yellower
    assert red[1] > black[1] + 10  # redder


def test_gender_and_age_act_on_skin_and_lips_and_keep_the_lightness(engine):
    """Colourizing a black-and-white face, a request moves the skin and lips it colours (warmer for a woman or
    a child); the photo's lightness stays exactly; an intact colour photo is never touched."""
    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB), (480, 320),
                       interpolation=cv2.INTER_AREA)
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    faces = engine.analyzer.analyze(grey)
    labels = engine.parser.parse_faces(grey, faces)
    face = np.any([parsing.region_mask(label, parsing.SKIN, parsing.LIPS) for label in labels], axis=0)
    asked = {name: restore(engine, grey, grayscale=True, **options) for name, options in {
        "female": {"gender": common_pb2.FEMALE}, "male": {"gender": common_pb2.MALE},
        "young": {"age": 8}, "old": {"age": 70}}.items()}
    redness = {name: (rgb_to_lab(image) * [100, 110, 110])[..., 1][face].mean() for name, image in asked.items()}
    assert redness["female"] > redness["male"] + 1.0
    assert redness["young"] > redness["old"] + 1.5
    for image in asked.values():  # lightness kept, up to gamut clipping and 8-bit rounding
        difference = np.abs(rgb_to_lab(image)[..., 0] - rgb_to_lab(grey)[..., 0]) * 100
        assert np.median(difference) < 0.5
    untouched = restore(engine, photo, gender=common_pb2.FEMALE, age=70)
    assert np.array_equal(untouched, restore(engine, photo))


def test_strips_upsample_exactly_like_one_resize():
    field = np.random.default_rng(0).random((37, 53, 3)).astype(np.float32)
    size = (resize.STRIP * 2 + 77, 301)
    whole = cv2.resize(field, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    pieces = np.concatenate([upsample_rows(field, rows, size) for rows in resize.strips(size[0])])
    assert np.abs(pieces - whole).max() < 1e-4


def test_large_photo_runs_the_network_at_working_resolution(engine):
    calls = []
    run = engine.model.run
    engine.model.run = lambda feeds: calls.append(feeds["planes"].shape) or run(feeds)
    scratch = np.zeros((2400, 1600), np.uint8)
    scratch[1200:1203, 100:1500] = 255
    try:
        out = restore(engine, np.full((2400, 1600, 3), 90, np.uint8), {common_pb2.SCRATCH: scratch})
        assert len(calls) == 1
        restore(engine, np.full((2400, 1600, 3), 90, np.uint8))  # nothing to correct: the network is not run
        assert len(calls) == 1
    finally:
        engine.model.run = run
    assert out.shape == (2400, 1600, 3)
    assert max(calls[0][2:]) <= compose.WORK_SIDE
