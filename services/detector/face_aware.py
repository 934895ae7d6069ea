"""Face analysis added to whichever damage engine runs, and faces' own features kept out of the damage.

Faces are found the same way whatever engine maps the damage, so the learned
engine and the classical baseline report the same faces, and the (8 MB of)
face models are loaded once per process however many engines share them.
"""

from __future__ import annotations

import numpy as np
from revive.v1 import common_pb2

from services.common.config import ServiceConfig
from services.common.engines import EngineFactory, runtime_options
from services.detector.engine import Detection, DetectorEngine
from services.detector.features import feature_mask, spare_features
from services.vision.faces.analyzer import FaceAnalyzer, shared_face_analyzer


class FaceAwareDetector:
    def __init__(self, damage: DetectorEngine, faces: FaceAnalyzer) -> None:
        self._damage, self._faces = damage, faces
        self.name, self.provider = damage.name, damage.provider

    def warm_up(self) -> None:
        self._damage.warm_up()
        self._faces.analyze(np.full((128, 128, 3), 128, np.uint8))

    def detect(self, rgb: np.ndarray, analyze_faces: bool = False) -> Detection:
        detection = self._damage.detect(rgb)
        if analyze_faces:
            detection.faces = self._faces.analyze(rgb)
            features = feature_mask(detection.faces, rgb.shape[:2])
            for kind in (common_pb2.SCRATCH, common_pb2.STAIN):
                detection.masks[kind] = spare_features(detection.masks[kind], features)
        return detection


def with_faces(factory: EngineFactory[DetectorEngine]) -> EngineFactory[FaceAwareDetector]:
    """Wrap an engine factory so the engine it builds also analyses faces on request."""

    def build(config: ServiceConfig) -> FaceAwareDetector:
        faces = shared_face_analyzer(config.models_dir, runtime_options(config))
        return FaceAwareDetector(factory(config), faces)

    return build
