"""FaceAnalyzer: every face in a photo with its box, 68 landmarks, age, gender and identity.

The pipeline is face-api's (detectAllFaces(TinyFaceDetector).withFaceLandmarks()
.withAgeAndGender().withFaceDescriptors()) on the ONNX files `convert.py` writes:
detect on the whole photo, then landmarks on each detection's crop, age/gender
on the crop around the landmarks, and the embedding on dlib's eyes-and-mouth
aligned square. One deliberate difference: landmarks are placed relative to the
crop actually fed to the network, where face-api offsets them by the unclipped,
unrounded detection box: up to a pixel off, and off by the overhang for faces
cut by the photo's border. `faceapi_landmark_shift=True` restores face-api's
placement so compare.py can check the converted networks to the last digit.

Identity is measured beyond what a blank face has. face-api's embeddings share a
narrow cone: different people score 0.83-0.93 in cosine, and a featureless grey
patch at a face's landmarks 0.79-0.94 against that face, as much as another
person, so a candidate whose face had been smoothed to nothing passed for the
same person. The direction the recogniser gives a featureless crop (the mean of
its embeddings of flat greys, `blank_direction`) is taken out of every
embedding (`beyond_blank`): on the test photos' faces different people then
score 0.50 (median; 0.73 at most), the same face grained, blurred and JPEG'd
0.97 (0.84 at least), and a flat grey patch -0.05 (0.34 at most).
`identity_beyond_blank=False` keeps face-api's own embedding (compare.py checks the
conversion against it).

One more addition: a face that fills the frame (a close-up, a cropped passport
photo) is larger than the detector's largest anchor and goes unfound, and then
its skin is coloured as background and its identity goes unchecked. When a
photo yields no face, it is searched again in the middle of a canvas twice its
size, its edges replicated outwards, and a face found there that covers much of
the frame is kept (`frame_filling`; off for compare.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.runtime import OnnxModel, RuntimeOptions
from services.vision.faces import geometry
from services.vision.faces.resampling import Crop, square_resize

log = logging.getLogger(__name__)

DETECTOR_INPUT = 416
FACE_INPUT = 112
RECOGNITION_INPUT = 150
#: face-api's TinyFaceDetectorOptions default, and its IOU_THRESHOLD.
SCORE_THRESHOLD = 0.5
#: A face found on the wider canvas counts when its box covers at least this share of the photo.
FRAME_FILLING = 0.25
#: Photos narrower than this hold no face the detector could find (its smallest are ~20 px).
MIN_PHOTO_SIDE = 8
IOU_THRESHOLD = 0.4
#: Percentiles of each channel that `stretched` makes black and white.
STRETCH = (0.5, 99.5)
#: Grey levels of the featureless crops whose embeddings make the blank-face direction.
BLANK_LEVELS = (60, 100, 128, 160, 200)


@functools.cache
def shared_face_analyzer(models_dir: Path, options: RuntimeOptions) -> FaceAnalyzer:
    """One FaceAnalyzer per process and models directory, however many engines use it."""
    return FaceAnalyzer(Path(models_dir) / "faces", options)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def similarity(a: common_pb2.Face | Sequence[float], b: common_pb2.Face | Sequence[float]) -> float:
    """Cosine similarity of two identity embeddings (faces or vectors): 1 = same direction.

    Embeddings are L2-normalised, so this is their dot product (with face-api's own embeddings,
    `identity_beyond_blank=False`, the Euclidean distance face-api thresholds is sqrt(2 - 2 * similarity)).
    """
    vectors = [np.asarray(x.embedding if isinstance(x, common_pb2.Face) else x, np.float64) for x in (a, b)]
    if any(v.size == 0 for v in vectors):
        raise ValueError("face has no embedding")
    left, right = (unit(v) for v in vectors)
    return float(left @ right)


def stretched(rgb: np.ndarray) -> np.ndarray:
    """`rgb` with each channel stretched so its STRETCH percentiles become black and white.

    Fading and a sepia tone flatten old prints' faces below what the detector finds (on damaged crops of the
    tuning portraits it found 14 of 51 faces); stretched, they show again.
    """
    pixels = rgb.astype(np.float32)
    low, high = np.percentile(pixels, STRETCH, axis=(0, 1))
    return np.clip((pixels - low) / np.maximum(high - low, 1.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def with_traits(face: common_pb2.Face, traits: tuple[float, float, np.ndarray] | None) -> common_pb2.Face:
    """`face` given its (age, P(male), unit embedding), as FaceAnalyzer._traits measures them (None: unmeasured)."""
    if traits is not None:
        age, male, embedding = traits
        face.age = age
        face.gender = common_pb2.MALE if male > 0.5 else common_pb2.FEMALE
        face.gender_confidence = max(male, 1.0 - male)
        face.embedding.extend(embedding.tolist())
    return face


def box_of(face: common_pb2.Face) -> np.ndarray:
    """The face's box as a float (x, y, width, height) array, as geometry's functions take it."""
    return np.array([face.box.x, face.box.y, face.box.width, face.box.height], np.float64)


def transformed(face: common_pb2.Face, factor: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> common_pb2.Face:
    """`face` with its box and landmarks scaled by `factor`, then shifted by (dx, dy): the same face in a photo
    resized or placed differently."""
    out = common_pb2.Face()
    out.CopyFrom(face)
    out.box.x, out.box.y = face.box.x * factor + dx, face.box.y * factor + dy
    out.box.width, out.box.height = face.box.width * factor, face.box.height * factor
    for point in out.landmarks:
        point.x, point.y = point.x * factor + dx, point.y * factor + dy
    return out


def moved(face: common_pb2.Face, dx: float, dy: float, width: int, height: int) -> common_pb2.Face | None:
    """`face` found on a larger canvas, in the photo's coordinates: landmarks as found (a chin may lie beyond
    the frame), the box cut to what the photo shows of it; None if the photo shows none of it."""
    out = transformed(face, dx=dx, dy=dy)
    box = out.box
    left, top = max(0.0, box.x), max(0.0, box.y)
    right, bottom = min(float(width), box.x + box.width), min(float(height), box.y + box.height)
    if right <= left or bottom <= top:
        return None
    box.x, box.y, box.width, box.height = left, top, right - left, bottom - top
    return out


def beyond_blank(embedding: np.ndarray, blank: np.ndarray | None) -> np.ndarray:
    """The unit `embedding` with its component along the unit `blank` direction taken out, renormalised: what
    tells this face from a featureless one. None keeps the embedding as the network gives it (normalised)."""
    embedding = unit(embedding.astype(np.float64))
    if blank is None:
        return embedding.astype(np.float32)
    return unit(embedding - float(embedding @ blank) * blank).astype(np.float32)


def _batch(pixels: np.ndarray, crops: list[Crop], size: int) -> np.ndarray:
    """Each crop padded (centred) to a square and resampled to size x size, stacked NHWC."""
    return np.stack([square_resize(crop.of(pixels), size, center=True) for crop in crops])


class FaceAnalyzer:
    """The four face networks in ONNX Runtime sessions, and the steps between them."""

    def __init__(self, models_dir: Path, options: RuntimeOptions, score_threshold: float = SCORE_THRESHOLD,
                 faceapi_landmark_shift: bool = False, frame_filling: bool = True, identity_beyond_blank: bool = True,
                 ) -> None:
        models_dir = Path(models_dir)
        self.detector = OnnxModel(models_dir / "tiny_face_detector.onnx", options, "face_detector")
        self.landmarker = OnnxModel(models_dir / "face_landmark_68.onnx", options, "face_landmarks")
        self.age_gender = OnnxModel(models_dir / "age_gender.onnx", options, "face_age_gender")
        self.recognizer = OnnxModel(models_dir / "face_recognition.onnx", options, "face_embedding")
        self.score_threshold = score_threshold
        self.faceapi_landmark_shift = faceapi_landmark_shift
        self.frame_filling = frame_filling
        #: What really runs the networks (the detector's provider stands for all four).
        self.provider = self.detector.provider
        #: The direction taken out of every embedding (None: face-api's own embeddings).
        self.blank = self.blank_direction() if identity_beyond_blank else None

    def blank_direction(self) -> np.ndarray:
        """The unit mean of the recogniser's embeddings of flat grey crops (BLANK_LEVELS): what it says of a face
        with no features, a direction all its embeddings lean towards."""
        flat = np.stack([np.full((RECOGNITION_INPUT, RECOGNITION_INPUT, 3), level, np.float32) for level in BLANK_LEVELS])
        (embeddings,) = self.recognizer.run({"image": flat})
        return unit(np.mean([unit(row.astype(np.float64)) for row in embeddings], axis=0))

    def detect(self, pixels: np.ndarray, score_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Face boxes (x, y, w, h in photo pixels, [K, 4]) and scores [K], best first, scoring at least
        `score_threshold` (None: the analyser's own)."""
        height, width = pixels.shape[:2]
        batch = square_resize(pixels, DETECTOR_INPUT, center=False)[None]
        (grid,) = self.detector.run({"image": batch})
        threshold = self.score_threshold if score_threshold is None else score_threshold
        boxes, scores = geometry.decode_grid(grid[0], width, height, DETECTOR_INPUT, threshold)
        keep = geometry.non_max_suppression(boxes, scores, IOU_THRESHOLD)
        return boxes[keep], scores[keep]

    def analyze(self, rgb: np.ndarray, score_threshold: float | None = None) -> list[common_pb2.Face]:
        """All faces in an HxWx3 uint8 RGB photo (HxW grey is accepted), best detection first; a lower
        `score_threshold` than the analyser's own finds faint faces, and more that are not faces."""
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[:, :, None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected HxWx3 RGB or HxW grey, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        if min(height, width) < MIN_PHOTO_SIDE:
            return []
        faces = self._analyze(rgb, score_threshold)
        if faces or not self.frame_filling:
            return faces
        top, left = height // 2, width // 2
        canvas = cv2.copyMakeBorder(rgb, top, top, left, left, cv2.BORDER_REPLICATE)
        found = (moved(face, -left, -top, width, height) for face in self._analyze(canvas, score_threshold))
        # Only what the first search could not have seen: a face filling much of the frame.
        return [face for face in found if face and face.box.width * face.box.height >= FRAME_FILLING * width * height]

    def _analyze(self, rgb: np.ndarray, score_threshold: float | None = None) -> list[common_pb2.Face]:
        height, width = rgb.shape[:2]
        boxes, scores = self.detect(rgb, score_threshold)
        crops = [Crop.clipped(*box, width, height) for box in boxes]
        found = [i for i, crop in enumerate(crops) if not crop.empty]
        if not found:
            return []
        boxes, scores, crops = boxes[found], scores[found], [crops[i] for i in found]

        (raw_landmarks,) = self.landmarker.run({"image": _batch(rgb, crops, FACE_INPUT)})
        origins = boxes[:, :2] if self.faceapi_landmark_shift else [(crop.x, crop.y) for crop in crops]
        landmarks = [geometry.landmarks_in_crop(raw, crop.width, crop.height) + origin
                     for raw, crop, origin in zip(raw_landmarks, crops, origins)]

        faces = []
        for box, score, points, traits in zip(boxes, scores, landmarks, self._traits(rgb, landmarks)):
            face = common_pb2.Face(
                box=common_pb2.Box(x=box[0], y=box[1], width=box[2], height=box[3]),
                score=float(score),
                landmarks=[common_pb2.Point(x=x, y=y) for x, y in points],
            )
            faces.append(with_traits(face, traits))
        log.debug("faces analysed", extra={"faces": len(faces), "width": width, "height": height})
        return faces

    def face_at(self, rgb: np.ndarray, face: common_pb2.Face) -> common_pb2.Face | None:
        """`face`'s box and landmarks (found in another version of the photo) with the age, gender and identity
        of whatever `rgb` shows there, or None where that crop misses the photo.

        Identity is a property of the pixels at a known place: a restored face the detector fails to find
        again (heavy grain, a faint group face) is still measured, and measured against the same crop.
        """
        points = np.array([(point.x, point.y) for point in face.landmarks], np.float32)
        traits = self._traits(rgb, [points]) if len(points) else [None]
        if traits[0] is None:
            return None
        return with_traits(common_pb2.Face(box=face.box, landmarks=face.landmarks), traits[0])

    def _traits(self, rgb: np.ndarray, landmarks: list[np.ndarray]) -> list[tuple[float, float, np.ndarray] | None]:
        """Per face (age, P(male), unit embedding), or None where a landmark-based crop misses the photo."""
        height, width = rgb.shape[:2]
        age_crops = [Crop.clipped(*geometry.landmark_box(points), width, height) for points in landmarks]
        id_crops = [Crop.clipped(*geometry.dlib_box(points), width, height) for points in landmarks]
        usable = [i for i in range(len(landmarks)) if not (age_crops[i].empty or id_crops[i].empty)]
        traits: list[tuple[float, float, np.ndarray] | None] = [None] * len(landmarks)
        if not usable:
            return traits
        ages, genders = self.age_gender.run({"image": _batch(rgb, [age_crops[i] for i in usable], FACE_INPUT)})
        (embeddings,) = self.recognizer.run({"image": _batch(rgb, [id_crops[i] for i in usable], RECOGNITION_INPUT)})
        for row, index in enumerate(usable):
            # face-api's gender softmax is (male, female).
            traits[index] = (float(ages[row]), float(genders[row][0]), beyond_blank(embeddings[row], self.blank))
        return traits
