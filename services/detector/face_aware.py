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
from services.common.resize import shrink_to
from services.detector.engine import Detection, DetectorEngine
from services.detector.features import feature_mask, spare_features, spare_region, spectacle_frames
from services.vision import parsing
from services.vision.faces.analyzer import FaceAnalyzer, box_of, shared_face_analyzer, stretched, transformed
from services.vision.faces.geometry import SAME_FACE, iou


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
            # On a black-and-white print a spot of another colour on a feature is foxing, not the feature.
            print_rgb = rgb if detection.is_grayscale else None
            for kind in (common_pb2.SCRATCH, common_pb2.STAIN):
                detection.masks[kind] = spare_region(spare_features(detection.masks[kind], features, print_rgb),
                                                     frames)
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
        """Faces of the photo, and those only a second look finds (`second_look`: damage filled, contrast
        stretched); for a small photo without any, of both enlarged with a sharp kernel (the detector otherwise
        sees a small face through a soft bilinear enlargement), mapped back to the photo."""
        look, factor = second_look(rgb, detection)
        faces = merged(self._faces.analyze(rgb), [transformed(face, 1 / factor) for face in self._faces.analyze(look)])
        if faces or max(rgb.shape[:2]) >= SMALL_PHOTO:
            return faces
        for photo in (rgb, look):
            enlarged = cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            faces = [transformed(face, 0.5) for face in self._faces.analyze(enlarged)]
            if faces:
                return faces
        return []


#: Photos whose long side is under this (twice the face detector's input) are also searched enlarged.
SMALL_PHOTO = 832
#: Long side of the second look: the face detector sees the photo at 416 px, and the landmarks and the
#: identity at 112 and 150 px a face, so a larger look would only cost time.
LOOK_SIDE = 1024
#: A shrunk damage mask pixel is damage from this share (of 255) covered: a 2 px crack shrunk 4x still is.
LOOK_DAMAGE = 32


def second_look(rgb: np.ndarray, detection: Detection) -> tuple[np.ndarray, float]:
    """(the photo as a face detector should see it, its scale): shrunk to LOOK_SIDE, its damage filled and each
    channel stretched to the full range.

    Why: old prints hide their faces from the detector. A crack network crosses them, fading and sepia
    flatten them; on damaged crops of the tuning portraits the detector found 14 of the 51 faces the clean
    photos show, and 26 with this look added. Faces missed go unprotected (their features filled as damage),
    unchecked (no identity) and uncoloured (no parse).
    """
    small = shrink_to(rgb, LOOK_SIDE)
    damage = (damage_union(detection.masks, rgb.shape[:2]) >= 128).astype(np.uint8) * 255
    if small is not rgb:
        shrunk = cv2.resize(damage, small.shape[1::-1], interpolation=cv2.INTER_AREA)
        damage = (shrunk >= LOOK_DAMAGE).astype(np.uint8) * 255
    # The scale of the long side: a strip's short side rounds far from it (4096x30 shrinks to 1024x8).
    return stretched(fill_damage(small, damage)), max(small.shape[:2]) / max(rgb.shape[:2])


def merged(faces: list[common_pb2.Face], more: list[common_pb2.Face]) -> list[common_pb2.Face]:
    """`faces`, then each of `more` that is not one of them."""
    out = list(faces)
    for face in more:
        if not out or iou(box_of(face), np.stack([box_of(known) for known in out])).max() < SAME_FACE:
            out.append(face)
    return out


def with_faces(factory: EngineFactory[DetectorEngine]) -> EngineFactory[FaceAwareDetector]:
    """Wrap an engine factory so the engine it builds also analyses faces on request."""

    def build(config: ServiceConfig) -> FaceAwareDetector:
        options = runtime_options(config)
        faces = shared_face_analyzer(config.models_dir, options)
        return FaceAwareDetector(factory(config), faces, parsing.shared_face_parser(config.models_dir, options))

    return build
