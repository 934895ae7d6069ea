"""Scores for each candidate from the detector's face analysis: is it the same person, as asked?

A small generator follows gender and age only weakly, so the gateway asks
for more seeds than the user wants and keeps the best by `overall`. Per
candidate, against the main face of the input photo (the largest face in
the detector's report, or found here when the report has none):

- identity_similarity: cosine similarity of the face embeddings (face-api's
  dlib ResNet, beyond the blank-face direction: services/vision/faces/analyzer.py),
  of the candidate's face found again (on the candidate with its contrast
  stretched where a faint face is not found as it is), or, where it is not
  found (`face_found` false), of the candidate's pixels at the input face's
  landmarks: a face wiped to a blank scores about 0 there. The gateway drops
  candidates below `IDENTITY_THRESHOLD`;
- gender_agreement: the analyser's probability that the candidate's face is
  the requested gender (absent when no gender was requested);
- age_agreement: exp(-0.5 * ((age - requested) / AGE_SIGMA)^2) (absent when no
  age was requested);
- overall: the geometric mean of the figures present (identity clipped to
  0..1); 1.0 when the photo shows no face and nothing can be judged.
"""

from __future__ import annotations

import math

import numpy as np
from revive.v1 import common_pb2

from services.common.config import MIB, ServiceConfig
from services.common.engines import EngineFactory, runtime_options
from services.generator import face_guard
from services.generator.engine import CandidateStep, GeneratorEngine, RestorationInput
from services.generator.photo_cache import PhotoCache
from services.vision.faces.analyzer import FaceAnalyzer, box_of, shared_face_analyzer, similarity, stretched
from services.vision.faces.geometry import iou

#: Cosine similarity (beyond the blank face) below which a candidate is no longer the same person: above every
#: pair of different people seen (0.755 in the test photos, 0.736 in the tuning portraits) and below every learned
#: restoration of the same face (0.80: bench/generator_bench.py, models/generator/restoration.json) and every grained,
#: blurred and JPEG'd copy of the tuning faces (0.914).
IDENTITY_THRESHOLD = 0.78
#: Face detection score enough, on a second look, for a face where the input's main face is (the analyser's
#: own is 0.5 anywhere in a photo).
KNOWN_FACE_SCORE = 0.3
#: Years at which age agreement falls to exp(-0.5).
AGE_SIGMA = 10.0


def main_face(faces: list[common_pb2.Face] | tuple[common_pb2.Face, ...]) -> common_pb2.Face | None:
    """The largest face that has an embedding, or None."""
    usable = [face for face in faces if len(face.embedding)]
    return max(usable, key=lambda face: face.box.width * face.box.height, default=None)


def matching_face(reference: common_pb2.Face, faces: list[common_pb2.Face]) -> common_pb2.Face | None:
    """The face in `faces` at the reference face's place (best box overlap, at least 0.3)."""
    usable = [face for face in faces if len(face.embedding)]
    if not usable:
        return None
    overlaps = iou(box_of(reference), np.stack([box_of(face) for face in usable]))
    best = int(np.argmax(overlaps))
    return usable[best] if overlaps[best] >= 0.3 else None


def gender_agreement(face: common_pb2.Face, wanted: int) -> float:
    return face.gender_confidence if face.gender == wanted else 1.0 - face.gender_confidence


def age_agreement(face: common_pb2.Face, wanted: float) -> float:
    return math.exp(-0.5 * ((face.age - wanted) / AGE_SIGMA) ** 2)


def combine(scores: common_pb2.CandidateScores) -> float:
    """Geometric mean of the figures present; 0 when the identity was lost or could not be measured."""
    if scores.HasField("face_found") and not scores.face_found and not scores.HasField("identity_similarity"):
        return 0.0
    terms = []
    if scores.HasField("identity_similarity"):
        terms.append(min(max(scores.identity_similarity, 0.0), 1.0))
    if scores.HasField("gender_agreement"):
        terms.append(scores.gender_agreement)
    if scores.HasField("age_agreement"):
        terms.append(scores.age_agreement)
    if not terms:
        return 1.0
    if min(terms) <= 0.0:
        return 0.0
    return float(math.exp(sum(math.log(t) for t in terms) / len(terms)))


class CandidateScorer:
    """Scores candidates of one photo; built once per photo (it holds the input's face)."""

    def __init__(self, analyzer: FaceAnalyzer, faces: list[common_pb2.Face],
                 options: common_pb2.RestoreOptions) -> None:
        self._analyzer = analyzer
        self._options = options
        #: The photo's faces (the detector's, or found here), whose texture every candidate keeps.
        self.faces = faces
        self.reference = main_face(self.faces)

    def keeps_identity(self, scores: common_pb2.CandidateScores) -> bool:
        """The person is still there: no reference face, or the candidate's face, found again or measured in
        place, looks like the same person."""
        if self.reference is None:
            return True
        return scores.HasField("identity_similarity") and scores.identity_similarity >= IDENTITY_THRESHOLD

    def score(self, candidate: np.ndarray) -> common_pb2.CandidateScores:
        scores = common_pb2.CandidateScores()
        if self.reference is not None:
            # A faint face (a faded print restored only so far) is looked for again with its contrast stretched,
            # as the detector looked for it, and a weaker detection counts where the face is known to be. A
            # face still not found is "not found", and what the candidate shows where the input's face is gets
            # measured there: a faint face is still the person, a wiped one scores as a blank does, about 0.
            face = (matching_face(self.reference, self._analyzer.analyze(candidate))
                    or matching_face(self.reference, self._analyzer.analyze(stretched(candidate), KNOWN_FACE_SCORE)))
            scores.face_found = face is not None
            if face is None:
                face = self._analyzer.face_at(candidate, self.reference)
            if face is not None and len(face.embedding):
                scores.identity_similarity = similarity(self.reference, face)
                if self._options.gender != common_pb2.GENDER_UNSPECIFIED:
                    scores.gender_agreement = gender_agreement(face, self._options.gender)
                if self._options.HasField("age"):
                    scores.age_agreement = age_agreement(face, self._options.age)
        scores.overall = combine(scores)
        return scores


class ScoredEngine:
    """A generator engine plus the face analyser that scores its candidates (any engine, Telea too)."""

    def __init__(self, engine: GeneratorEngine, analyzer: FaceAnalyzer, photos: PhotoCache | None = None) -> None:
        self.engine = engine
        self.analyzer = analyzer
        self.name = engine.name
        self.provider = engine.provider
        #: The photos this engine's candidates were recently made of, with what was worked out for them.
        self.photos = photos if photos is not None else PhotoCache(0)

    def warm_up(self) -> None:
        self.engine.warm_up()
        self.analyzer.analyze(np.full((64, 64, 3), 128, np.uint8))

    def generate(self, request: RestorationInput, seed: int, keep_faces: CandidateStep | None = None) -> np.ndarray:
        return self.engine.generate(request, seed, keep_faces)

    def repaired(self, request: RestorationInput, seed: int) -> np.ndarray:
        return self.engine.repaired(request, seed)

    def face_guard(self, request: RestorationInput) -> face_guard.FaceGuard | None:
        """What every candidate of this photo goes through (its faces keep their texture; refilled when the
        person is lost): the photo with only its damage filled, made once per photo. None without faces."""
        faces = request.faces(self.analyzer)
        if not faces:
            return None
        return request.once("face_guard", lambda: face_guard.FaceGuard(request.levelled, faces))

    def scorer(self, request: RestorationInput) -> CandidateScorer:
        return request.once("scorer", lambda: CandidateScorer(self.analyzer, request.faces(self.analyzer),
                                                              request.options))


def scored(factory: EngineFactory[GeneratorEngine]) -> EngineFactory[ScoredEngine]:
    """An engine factory whose engines come wrapped in ScoredEngine, sharing one analyser per process."""

    def build(config: ServiceConfig) -> ScoredEngine:
        engine = factory(config)
        return ScoredEngine(engine, shared_face_analyzer(config.models_dir, runtime_options(config)),
                            PhotoCache(config.settings.photo_cache_mb * MIB, engine.name))

    return build
