"""Colour looks for the rest of a group at a lower detector score, and keeps only what the parse calls a face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.runtime import RuntimeOptions
from services.generator.engine import RestorationInput
from services.generator.engines.learned import LearnedGenerator, group_candidates, skin_share
from services.vision import parsing

MODELS = Path(__file__).resolve().parents[2] / "models"
FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


def face(x: float, y: float, width: float, score: float = 0.3) -> common_pb2.Face:
    return common_pb2.Face(box=common_pb2.Box(x=x, y=y, width=width, height=width * 1.1), score=score)


def test_group_candidates_are_the_size_of_the_found_faces_and_overlap_none() -> None:
    found = [face(100, 100, 100, 0.9), face(300, 110, 110, 0.8)]
    weaker = [face(500, 100, 95), face(510, 400, 300), face(520, 300, 30), face(120, 105, 100)]
    kept = group_candidates(found, weaker)
    assert [(f.box.x, f.box.y) for f in kept] == [(500, 100)]  # not the giant, the speck or the found face again


def test_skin_share_reads_the_parse_inside_the_box() -> None:
    labels = np.zeros((100, 100), np.uint8)
    labels[20:40, 20:40] = parsing.Label.SKIN
    labels[20:40, 40:60] = parsing.Label.CLOTH
    box = common_pb2.Box(x=20, y=20, width=40, height=20)
    assert skin_share(labels, box) == 0.5
    assert skin_share(labels, common_pb2.Box(x=150, y=150, width=10, height=10)) == 0.0  # outside the photo


def test_a_lone_face_brings_no_weaker_ones_and_a_group_keeps_its_found_faces() -> None:
    engine = LearnedGenerator(models_dir=MODELS, options=RuntimeOptions(providers=("cpu",), threads=1))
    rgb = cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB)
    grey = np.repeat(cv2.cvtColor(cv2.resize(rgb, (960, 640), interpolation=cv2.INTER_AREA),
                                  cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    request = RestorationInput(grey, {}, common_pb2.DamageReport(is_grayscale=True), common_pb2.RestoreOptions())
    faces, labels = engine.colour_faces(request), engine.head_labels(request)
    found = request.faces(engine.analyzer)
    assert faces[:len(found)] == found and len(labels) == len(faces)
    assert all(skin_share(label, f.box) > 0.25 for f, label in zip(faces, labels, strict=True))
    blank = np.full((400, 400, 3), 128, np.uint8)
    empty = RestorationInput(blank, {}, common_pb2.DamageReport(is_grayscale=True), common_pb2.RestoreOptions())
    assert engine.colour_faces(empty) == [] and engine.head_labels(empty) == []
