"""Candidate scores over real gRPC: every engine's candidates carry face scores; the rules that combine them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from revive.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.imaging import from_proto, to_proto
from services.common.runtime import RuntimeOptions
from services.common.server import ServiceServer
from services.generator.scoring import IDENTITY_THRESHOLD, CandidateScorer, combine
from services.generator.service import DEFINITION
from services.vision.faces.analyzer import shared_face_analyzer
from tests.cluster import channel, start_service
from tests.photos import scratched

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceServer]:
    running = start_service(DEFINITION, "--engines", "learned,telea")
    yield running
    running.stop(0)


@pytest.fixture(scope="module")
def group_photo() -> tuple[np.ndarray, np.ndarray]:
    photo = cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB)
    return scratched(cv2.resize(photo, (960, 640), interpolation=cv2.INTER_AREA), count=3)


def generate(server: ServiceServer, photo: np.ndarray, mask: np.ndarray, engine: str, seeds: list[int],
             **options: object) -> list[generator_pb2.Candidate]:
    report = common_pb2.DamageReport(masks=[common_pb2.DamageMask(type=common_pb2.SCRATCH, mask=to_proto(mask))])
    request = generator_pb2.GenerateRequest(image=to_proto(photo), damage=report, seeds=seeds, engine=engine,
                                            options=common_pb2.RestoreOptions(**options))
    return list(generator_pb2_grpc.GeneratorStub(channel(server.port)).Generate(request, timeout=60))


@pytest.mark.parametrize("engine", ["learned", "telea"])
def test_candidates_carry_identity_gender_and_age_scores(server, group_photo, engine):
    photo, mask = group_photo
    candidates = generate(server, photo, mask, engine, [1, 2], gender=common_pb2.FEMALE, age=30)
    assert [c.seed for c in candidates] == [1, 2] and {c.engine for c in candidates} == {engine}
    for candidate in candidates:
        scores = candidate.scores
        assert from_proto(candidate.image).shape == photo.shape
        assert scores.identity_similarity >= IDENTITY_THRESHOLD  # the restored face is the same person
        assert 0.0 <= scores.gender_agreement <= 1.0 and 0.0 <= scores.age_agreement <= 1.0
        assert 0.0 < scores.overall <= 1.0
        assert scores.overall == pytest.approx(combine(scores))


def faded(photo: np.ndarray) -> np.ndarray:
    """A print faded to a fifth of its contrast and toned sepia: the face detector finds no face in it."""
    return np.clip((200 + (photo.astype(np.float32) - 200) * 0.2) * np.array([1.0, 0.93, 0.8]), 0, 255).astype(np.uint8)


def test_a_faint_face_is_looked_for_again_and_a_lost_one_is_not_found():
    """A face too faint for the analyser as it is is found with its contrast stretched, and checked; where the
    face is gone (a blank patch), the candidate's face is "not found", and measured in place it is no one."""
    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB), (960, 640),
                       interpolation=cv2.INTER_AREA)
    analyzer = shared_face_analyzer(DEFINITION.parse([]).models_dir, RuntimeOptions(providers=("cpu",)))
    scorer = CandidateScorer(analyzer, analyzer.analyze(photo), common_pb2.RestoreOptions())
    faint = faded(photo)
    assert analyzer.analyze(faint) == []
    scores = scorer.score(faint)
    assert scores.face_found and scores.identity_similarity >= IDENTITY_THRESHOLD and scorer.keeps_identity(scores)
    lost = scorer.score(np.full_like(photo, 200))
    assert not lost.face_found and lost.identity_similarity < 0.4 and not scorer.keeps_identity(lost)
    assert lost.overall < 0.4


def test_a_face_the_analyser_cannot_find_again_is_measured_where_it_was():
    """A candidate whose face the detector misses even stretched (dust specks over it) is measured where the
    input's face is: an honest figure, far above a face wiped to a blank, which measures as no one, and the
    speckled one ranks first. Neither passes for the person: past what hides a face from the detector, its
    identity falls too (measured: 0.43-0.63 for specks, heavy grain, JPEG and fading that hide it)."""
    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB), (960, 640),
                       interpolation=cv2.INTER_AREA)
    analyzer = shared_face_analyzer(DEFINITION.parse([]).models_dir, RuntimeOptions(providers=("cpu",)))
    scorer = CandidateScorer(analyzer, analyzer.analyze(photo), common_pb2.RestoreOptions())
    box = scorer.reference.box
    rows = slice(int(box.y), int(box.y + box.height))
    cols = slice(int(box.x), int(box.x + box.width))
    speckled = photo.copy()
    rng = np.random.default_rng(0)
    specks = rng.random((rows.stop - rows.start, cols.stop - cols.start)) < 0.12
    speckled[rows, cols][specks] = rng.choice([0, 255], size=(int(specks.sum()), 1))
    wiped = photo.copy()
    wiped[rows, cols] = int(photo[rows, cols].mean())
    dusty, blank = scorer.score(speckled), scorer.score(wiped)
    assert not dusty.face_found and not blank.face_found
    assert dusty.identity_similarity > blank.identity_similarity + 0.3 and blank.identity_similarity < 0.3
    assert dusty.overall > blank.overall
    assert not scorer.keeps_identity(dusty) and not scorer.keeps_identity(blank)


def test_candidates_of_a_faded_print_keep_their_faces_checked(server):
    """Over gRPC, with the faces the detector reported (found on its second look): every candidate of a faded
    group photo has its main face measured and still the same person."""
    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB), (960, 640),
                       interpolation=cv2.INTER_AREA)
    analyzer = shared_face_analyzer(DEFINITION.parse([]).models_dir, RuntimeOptions(providers=("cpu",)))
    report = common_pb2.DamageReport(faces=analyzer.analyze(photo), fading_score=0.9, is_grayscale=True)
    request = generator_pb2.GenerateRequest(image=to_proto(faded(photo)), damage=report, seeds=[1, 2],
                                            options=common_pb2.RestoreOptions(colorize=common_pb2.COLORIZE_OFF))
    for candidate in generator_pb2_grpc.GeneratorStub(channel(server.port)).Generate(request, timeout=60):
        assert candidate.scores.face_found and candidate.scores.identity_similarity >= IDENTITY_THRESHOLD


def test_unrequested_options_and_faceless_photos_are_not_scored(server):
    photo = np.tile(np.linspace(40, 220, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    mask = np.zeros(photo.shape[:2], np.uint8)
    (candidate,) = generate(server, photo, mask, "learned", [5])
    assert not candidate.scores.HasField("identity_similarity")
    assert not candidate.scores.HasField("gender_agreement") and not candidate.scores.HasField("age_agreement")
    assert candidate.scores.overall == 1.0


def test_overall_is_the_geometric_mean_and_zero_when_identity_is_lost():
    assert combine(common_pb2.CandidateScores(identity_similarity=0.9, gender_agreement=0.4)) == pytest.approx(0.6)
    assert combine(common_pb2.CandidateScores(identity_similarity=-0.1, age_agreement=1.0)) == 0.0
    assert combine(common_pb2.CandidateScores()) == 1.0
    # Not found again but measured in place: the measure counts; with no measure at all, nothing does.
    assert combine(common_pb2.CandidateScores(face_found=False, identity_similarity=0.9)) == pytest.approx(0.9)
    assert combine(common_pb2.CandidateScores(face_found=False)) == 0.0
