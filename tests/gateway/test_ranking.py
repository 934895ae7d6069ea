"""Choosing candidates: surplus seeds only where ranking can choose; identity losses dropped."""

from __future__ import annotations

from revive.v1 import common_pb2

from gateway.pipeline import Generated, select, surplus


def candidate(seed: int, overall: float, identity: float | None = None) -> Generated:
    scores = common_pb2.CandidateScores(overall=overall)
    if identity is not None:
        scores.identity_similarity = identity
    return Generated(seed, scores, common_pb2.Image())


def test_surplus_only_when_faces_or_gender_or_age_give_ranking_a_signal():
    plain = common_pb2.DamageReport()
    with_face = common_pb2.DamageReport(faces=[common_pb2.Face()])
    assert surplus(4, plain, common_pb2.RestoreOptions(), 0.5) == 0
    assert surplus(4, with_face, common_pb2.RestoreOptions(), 0.5) == 2
    assert surplus(3, plain, common_pb2.RestoreOptions(gender=common_pb2.FEMALE), 0.5) == 2
    assert surplus(3, plain, common_pb2.RestoreOptions(age=30), 0.0) == 0


def test_best_first_with_seed_order_breaking_ties():
    seeds = [10, 11, 12, 13]
    chosen = select([candidate(10, 0.2), candidate(11, 0.9), candidate(12, 0.2), candidate(13, 0.5)], seeds, 3, 0.85)
    assert [c.seed for c in chosen] == [11, 13, 10]


def test_candidates_that_lost_the_person_come_last_and_flagged():
    seeds = [1, 2, 3]
    chosen = select([candidate(1, 0.9, 0.5), candidate(2, 0.7, 0.95), candidate(3, 0.6, 0.9)], seeds, 2, 0.85)
    assert [c.seed for c in chosen] == [2, 3]
    assert not any(c.identity_doubtful for c in chosen)
    only_bad = select([candidate(1, 0.4, 0.3), candidate(2, 0.8, 0.2)], seeds[:2], 2, 0.85)
    assert [c.seed for c in only_bad] == [2, 1]
    assert all(c.identity_doubtful for c in only_bad)


def test_a_face_not_found_is_not_a_pass_whatever_its_overall():
    lost = candidate(1, 0.99)
    lost.scores.face_found = False
    kept = candidate(2, 0.5, 0.95)
    kept.scores.face_found = True
    chosen = select([lost, kept], [1, 2], 1, 0.85)
    assert [c.seed for c in chosen] == [2] and not chosen[0].identity_doubtful


def test_a_face_not_found_but_measured_in_place_passes_on_its_measure():
    faint = candidate(1, 0.9, 0.9)
    faint.scores.face_found = False
    wiped = candidate(2, 0.95, 0.05)
    wiped.scores.face_found = False
    chosen = select([faint, wiped], [1, 2], 2, 0.85)
    assert [c.seed for c in chosen] == [1, 2]
    assert not chosen[0].identity_doubtful and chosen[1].identity_doubtful
