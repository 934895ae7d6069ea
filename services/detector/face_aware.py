"""Face analysis added to whichever damage engine runs, and faces' own features kept out of the damage.

Faces are found the same way whatever engine maps the damage, so the learned
engine and the classical baseline report the same faces, and the (8 MB of)
face models are loaded once per process however many engines share them.
"""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.config import ServiceConfig
from services.common.engines import EngineFactory, runtime_options
from services.common.inpainting import damage_union, fill_damage
from services.detector.engine import Detection, DetectorEngine
from services.detector.features import feature_mask, spare_features, spare_region, spectacle_frames
from services.vision import parsing
from services.vision.faces.analyzer import FaceAnalyzer, shared_face_analyzer, transformed


class FaceAwareDetector:
    def __init__(self, damage: DetectorEngine, faces: FaceAnalyzer, parser: parsing.FaceParser) -> None:
        self._damage, self._faces, self._parser = damage, faces, parser
        self.name, self.provider = damage.name, damage.provider

    def warm_up(self) -> None:
        self._damage.warm_up()
        self._faces.analyze(np.full((128, 128, 3), 128, np.uint8))
        self._parser.parse(np.full((128, 128, 3), 128, np.uint8), (32, 32, 64, 64))

    def detect(self, rgb: np.ndarray, analyze_faces: bool = False) -> Detection:
        detection = self._damage.detect(rgb)
        if analyze_faces:
            detection.faces = self._find_faces(rgb, detection)
            features = feature_mask(detection.faces, rgb.shape[:2])
            frames = self._spectacle_frames(rgb, detection.faces)
            for kind in (common_pb2.SCRATCH, common_pb2.STAIN):
                detection.masks[kind] = spare_region(spare_features(detection.masks[kind], features), frames)
        return detection

    def _spectacle_frames(self, rgb: np.ndarray, faces: list[common_pb2.Face]) -> np.ndarray:
        """uint8 0/1: the frames of every face's spectacles, parsed one face at a time (a label map per face of a
        4096x4096 photo is 16 MB)."""
        frames = np.zeros(rgb.shape[:2], np.uint8)
        for face in faces:
            glasses = parsing.region_mask(self._parser.parse(rgb, face), parsing.GLASSES)
            frames |= spectacle_frames(glasses, face.box)
        return frames

    def _find_faces(self, rgb: np.ndarray, detection: Detection) -> list[common_pb2.Face]:
        """Faces of the photo; when none is found, of the photo with its damage filled (a crack across a face
        can hide it), and for a small photo of both enlarged with a sharp kernel (the detector otherwise sees
        a small face through a soft bilinear enlargement), mapped back to the photo."""
        faces = self._faces.analyze(rgb)
        if faces:
            return faces
        filled = damage_filled(rgb, detection)
        faces = self._faces.analyze(filled) if filled is not rgb else []
        if faces or max(rgb.shape[:2]) >= SMALL_PHOTO:
            return faces
        for photo in (rgb, filled) if filled is not rgb else (rgb,):
            enlarged = cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            faces = [transformed(face, 0.5) for face in self._faces.analyze(enlarged)]
            if faces:
                return faces
        return []


#: Photos whose long side is under this (twice the face detector's input) are also searched enlarged.
SMALL_PHOTO = 832


def damage_filled(rgb: np.ndarray, detection: Detection) -> np.ndarray:
    """The photo with its detected damage filled, as the generator fills it: a crack across a face can hide it
    from the face detector, and then its features go unprotected and its identity unchecked."""
    return fill_damage(rgb, damage_union(detection.masks, rgb.shape[:2]))


def with_faces(factory: EngineFactory[DetectorEngine]) -> EngineFactory[FaceAwareDetector]:
    """Wrap an engine factory so the engine it builds also analyses faces on request."""

    def build(config: ServiceConfig) -> FaceAwareDetector:
        options = runtime_options(config)
        faces = shared_face_analyzer(config.models_dir, options)
        return FaceAwareDetector(factory(config), faces, parsing.shared_face_parser(config.models_dir, options))

    return build
