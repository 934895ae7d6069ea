"""Candidates keep each face's own fine texture; tone stays the candidate's, and nothing outside faces moves."""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.generator.engine import RestorationInput
from services.generator.face_guard import MARGIN, FaceGuard, face_windows
from services.generator.planes import rgb_to_lab
from services.generator.scoring import CandidateScorer
from tests.generator.test_learned import FACES, engine  # noqa: F401 (the shared engine fixture)


def test_a_softened_face_gets_the_photos_detail_back_and_keeps_the_candidates_tone(engine):  # noqa: F811
    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(FACES / "sample3.jpg")), cv2.COLOR_BGR2RGB), (480, 320),
                       interpolation=cv2.INTER_AREA)
    faces = engine.analyzer.analyze(photo)
    assert faces
    # What a working-resolution network can do to a face: softer, and a little darker.
    candidate = np.clip(cv2.GaussianBlur(photo, (0, 0), 2.0).astype(int) - 12, 0, 255).astype(np.uint8)
    kept = FaceGuard(photo, faces).keep_texture(candidate)
    inside = np.zeros(photo.shape[:2], bool)
    for face in faces:
        box = face.box
        inside[int(box.y + 0.3 * box.height):int(box.y + 0.7 * box.height),
               int(box.x + 0.3 * box.width):int(box.x + 0.7 * box.width)] = True
    lightness = {name: rgb_to_lab(image)[..., 0] * 100 for name, image in
                 {"photo": photo, "candidate": candidate, "kept": kept}.items()}
    detail = {name: value - cv2.GaussianBlur(value, (0, 0), 2.0) for name, value in lightness.items()}
    error_before = np.abs(detail["candidate"] - detail["photo"])[inside].mean()
    error_after = np.abs(detail["kept"] - detail["photo"])[inside].mean()
    assert error_after < 0.5 * error_before
    # The tone is the candidate's: mean lightness inside the faces moved with it.
    assert abs(lightness["kept"][inside].mean() - lightness["candidate"][inside].mean()) < 1.5
    # Far from every face, not one pixel changed.
    near = np.zeros(photo.shape[:2], bool)
    for face in faces:
        box, grow = face.box, MARGIN + 0.05
        near[max(0, int(box.y - grow * box.height)):int(box.y + (1 + grow) * box.height) + 2,
             max(0, int(box.x - grow * box.width)):int(box.x + (1 + grow) * box.width) + 2] = True
    assert np.array_equal(kept[~near], candidate[~near])


def test_a_candidate_that_lost_the_person_is_refilled_and_then_keeps_it(engine):  # noqa: F811
    photo = cv2.resize(cv2.cvtColor(cv2.imread(str(FACES / "sample6.jpg")), cv2.COLOR_BGR2RGB), (640, 480),
                       interpolation=cv2.INTER_AREA)
    request = RestorationInput(photo, {}, common_pb2.DamageReport(), common_pb2.RestoreOptions())
    scorer = CandidateScorer(engine.analyzer, request.faces(engine.analyzer), request.options)
    guard = FaceGuard(photo, scorer.faces)
    # Someone else's face, as far as the analyser can tell: each face window smeared flat.
    lost = photo.copy()
    for window, _sigma in face_windows(scorer.faces, *photo.shape[:2]):
        lost[window] = cv2.GaussianBlur(lost[window], (0, 0), 9)
    assert not scorer.keeps_identity(scorer.score(lost))
    refilled = guard.refill(lost)
    assert scorer.keeps_identity(scorer.score(refilled))
