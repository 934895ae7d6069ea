"""The learned generator: RestorationNet (ONNX) at working resolution, composed at full resolution.

Per candidate: the detector's scratch/tear/stain masks are inpainted at full
resolution (Navier-Stokes), the result and the masks are area-downscaled to the
working resolution (`compose.WORK_SIDE`), the network predicts restored Lab
there from them, the conditions (colourize, gender, age) and noise drawn
from the seed, and
`compose` lays that prediction onto the full-resolution photo (tone, colour,
chroma and large fills through guided upsampling, detail from the photo), in
strips so a 4096x4096 photo stays in bounded memory.
Hair colour is then set around each face, within the person mask
(`hair.recolour`, `segmentation.person`).

The model runs on the best provider ONNX Runtime has (TensorRT engine from
`make engines` -> CUDA -> CPU); `provider` says which one really runs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.config import ServiceConfig
from services.common.engines import runtime_options
from services.common.runtime import OnnxModel, RuntimeOptions
from services.common.tensorrt import profile_shapes, serving_cache_dir
from services.generator import colourize, compose, hair
from services.generator.engine import DEFAULT_STRENGTH, CandidateStep, RestorationInput
from services.generator.planes import (
    CHANNELS,
    LAB_SCALE,
    MULTIPLE,
    Conditions,
    network_input,
    noise_planes,
    rgb_to_lab,
)
from services.vision import parsing, person, pose, scene_colour
from services.vision.faces.analyzer import box_of, shared_face_analyzer
from services.vision.faces.geometry import SAME_FACE, iou

MODEL_FILE = Path("generator") / "restoration.onnx"
#: The network's input, and the TensorRT optimisation profile over the working resolutions it
#: serves (multiples of 8 up to WORK_SIDE, tuned for a 4:3 photo).
INPUT = "planes"
TRT_PROFILE = {"min": (8, 8), "opt": (288, compose.WORK_SIDE), "max": (compose.WORK_SIDE, compose.WORK_SIDE)}


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


#: A face covering more of the photo than this makes it a portrait: its background gets a backdrop
#: colour, not sky and foliage cues.
PORTRAIT_FACE_SHARE = 0.01
#: In a group where the analyser found someone, colour looks for the rest of it down to this detector score: faces
#: turned down or in profile score 0.15-0.3 (two of the three women on the tuning sofa photo, at 768 px and at
#: full size), and the bare skin of people without a found face took a clothes dye. Only faces about the size of
#: those found count (GROUP_SIZE, in box widths) and that overlap none of them (geometry.SAME_FACE). On the tuning,
#: test and real photos the false faces beside found ones scored 0.13 at most (a hand, a face box twice the size
#: of the sitters'); the false faces above 0.15 were in photos without any other face. A face so found counts
#: only if its parse shows skin over MIN_FACE_SKIN of its box: the parser took a profile on the sofa photo for
#: clothes, and her face took a dye.
WEAK_FACE_SCORE = 0.15
GROUP_SIZE = (0.6, 1.6)
MIN_FACE_SKIN = 0.25
#: Blur (working-resolution pixels) that turns the damage/fading masks into a smooth correction area.
AREA_SOFTNESS = 6.0


def correction_area(damage: np.ndarray, fading: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """0..1 at working resolution: where the detector reported damage or fading, softened."""
    area = compose.downscale(np.maximum(damage, fading), size).astype(np.float32) / 255.0
    return np.clip(cv2.GaussianBlur(area, (0, 0), AREA_SOFTNESS) * 2.0, 0.0, 1.0)


class LearnedGenerator:
    name = "learned"

    def __init__(self, config: ServiceConfig | None = None, *, models_dir: Path | None = None,
                 options: RuntimeOptions | None = None) -> None:
        models_dir = Path(models_dir or config.models_dir)
        options = options or runtime_options(config)
        # Loaded here so health waits for it; the same instance scores the candidates.
        self.analyzer = shared_face_analyzer(models_dir, options)
        # Keeps the hair colour off backgrounds of the hair's own colour; tells people from scenery.
        self.segmenter = person.PersonSegmenter(models_dir / person.MODEL_FILE, options)
        # Where each found person's arms, hands and legs are: where bare skin is looked for.
        self.landmarker = pose.PoseLandmarker(models_dir / pose.MODEL_FILE, options)
        # The regions of a face a black-and-white photo is coloured by.
        self.parser = parsing.shared_face_parser(models_dir, options)
        # What a scene (no portrait) showed: sky, foliage, water, stone.
        self.scene = scene_colour.SceneColourPrior(models_dir / scene_colour.MODEL_FILE, options)
        # The TensorRT engine `make engines` built for this model, GPU and TensorRT, when there is one.
        keyed = replace(options, trt_cache_dir=serving_cache_dir(models_dir / MODEL_FILE, options.trt_cache_dir),
                        trt_profile=profile_shapes(INPUT, CHANNELS, TRT_PROFILE))
        self.model = OnnxModel(models_dir / MODEL_FILE, keyed, "generator_restoration")
        self.provider = self.model.provider

    def warm_up(self) -> None:
        rgb = np.full((48, 64, 3), 120, np.uint8)
        scratch = np.zeros((48, 64), np.uint8)
        scratch[20:22, 8:56] = 255  # something to correct, so that the network runs too
        self.generate(RestorationInput(rgb, {common_pb2.SCRATCH: scratch}, common_pb2.DamageReport(),
                                       common_pb2.RestoreOptions()), 0)

    def predict(self, filled: np.ndarray, damage: np.ndarray, fading: np.ndarray, conditions: Conditions,
                seed: int) -> np.ndarray:
        """Restored normalised Lab (h x w x 3) at the working resolution, from the inpainted photo."""
        size = compose.working_size(*filled.shape[:2])
        planes = network_input(
            rgb_to_lab(compose.downscale(filled, size)),
            compose.downscale(damage, size).astype(np.float32) / 255.0,
            compose.downscale(fading, size).astype(np.float32) / 255.0,
            conditions,
            noise_planes(np.random.default_rng(seed), size),
        )
        height, width = size
        pad = ((0, 0), (0, round_up(height, MULTIPLE) - height), (0, round_up(width, MULTIPLE) - width))
        (lab,) = self.model.run({INPUT: np.pad(planes, pad, mode="reflect")[None]})
        return np.ascontiguousarray(lab[0, :, :height, :width].transpose(1, 2, 0))

    def generate(self, request: RestorationInput, seed: int, keep_faces: CandidateStep | None = None) -> np.ndarray:
        damage = request.damage_mask()
        fading = request.masks.get(common_pb2.FADING, np.zeros(damage.shape, np.uint8))
        colorize = request.should_colorize()
        neutral = not colorize and request.report.is_grayscale
        filled = request.levelled
        strength = request.strength
        # The network restores tone (and fills large holes) where the detector found something to correct;
        # colour for a black-and-white photo comes from its regions (colourize.py), not from the network.
        where = correction_area(damage, fading, compose.working_size(*filled.shape[:2]))
        # With nothing to correct (no damage, no fading) the network's tone would be applied nowhere.
        prediction = (self.predict(filled, damage, fading, Conditions.of(False, request.options), seed)
                      if where.any() else None)
        restored = compose.compose(filled, prediction, strength, neutral or colorize, where)
        if keep_faces:
            restored = keep_faces(restored)
        if colorize:
            return self.colourize(restored, request, seed, strength)
        if request.options.hair_color != common_pb2.HAIR_COLOR_UNSPECIFIED:
            faces = self.colour_faces(request)
            person = self.people(request) if faces else None
            restored = hair.recolour(restored, faces, request.options.hair_color, neutral, person)
        return restored

    def repaired(self, request: RestorationInput, seed: int) -> np.ndarray:
        """The full-resolution fill's region, the same for every seed."""
        region = request.fill_region
        if region is None:
            return np.zeros(request.rgb.shape[:2], np.uint8)
        return region.mask * np.uint8(255)

    def people(self, request: RestorationInput) -> np.ndarray:
        """The person probability (`PersonSegmenter.around_faces`: the whole photo's and each found face's) of the
        photo with its damage filled: what every candidate shows, so it is worked out once per photo."""
        return request.once("people", lambda: self.segmenter.around_faces(
            request.levelled, [box_of(face) for face in self.colour_faces(request)]))

    def poses(self, request: RestorationInput) -> list[pose.Pose]:
        """The body below each found face, in the photo with its damage filled; once per photo."""
        return request.once("poses", lambda: self.landmarker.poses(
            request.levelled, [box_of(face) for face in self.colour_faces(request)]))

    def colour_faces(self, request: RestorationInput) -> list[common_pb2.Face]:
        """The faces colour is chosen around: the photo's and, in a group, the rest of it (WEAK_FACE_SCORE) where
        the parse shows a face."""
        return self._group(request)[0]

    def head_labels(self, request: RestorationInput) -> list[np.ndarray]:
        """The parse of each of `colour_faces`' heads (colourize.HEAD_ZOOM), of the photo as it came; the group's
        weaker faces were parsed when they were checked."""
        faces, weaker_labels = self._group(request)
        found = faces[:len(faces) - len(weaker_labels)]
        return request.once("head_labels", lambda: (
            self.parser.parse_faces(request.rgb, found, colourize.HEAD_ZOOM) if found else []) + weaker_labels)

    def _group(self, request: RestorationInput) -> tuple[list[common_pb2.Face], list[np.ndarray]]:
        """(the photo's faces and the group's weaker ones kept, the weaker ones' parses), once per photo. Only
        candidates are parsed here, and most photos have none: the hair-only path does not parse."""
        def look() -> tuple[list[common_pb2.Face], list[np.ndarray]]:
            faces = request.faces(self.analyzer)
            weak = group_candidates(faces, self.analyzer.analyze(request.rgb, WEAK_FACE_SCORE)) if faces else []
            labels = self.parser.parse_faces(request.rgb, weak, colourize.HEAD_ZOOM) if weak else []
            kept = [(face, label) for face, label in zip(weak, labels, strict=True)
                    if skin_share(label, face.box) >= MIN_FACE_SKIN]
            return faces + [face for face, _ in kept], [label for _, label in kept]

        return request.once("colour_group", look)

    def colourize(self, grey: np.ndarray, request: RestorationInput, seed: int, strength: float) -> np.ndarray:
        """Colour for the restored grey photo: a palette per region, drawn from `seed`, spread over the photo."""
        # Regions of the photo as it came: the same whatever the candidate.
        faces, labels = self.colour_faces(request), self.head_labels(request)
        photo_area = grey.shape[0] * grey.shape[1]
        portrait = any(face.box.width * face.box.height > PORTRAIT_FACE_SHARE * photo_area for face in faces)
        size = colourize.solve_size(*grey.shape[:2])
        lightness = rgb_to_lab(compose.downscale(grey, size))[..., 0] * LAB_SCALE[0]
        options = request.options
        palette = colourize.Palette.draw(seed, options.gender, float(options.age) if options.HasField("age") else None)
        # A scene's colour comes from what it shows; a portrait's backdrop is a palette's, different per candidate.
        scene = None if portrait else self.scene.predict(lightness, scene_colour.candidate_tilt(seed))
        people = self.people(request)
        limbs = pose.limb_mask(self.poses(request), size, size[0] / grey.shape[0]) if labels else None
        regions, owners = colourize.region_map(lightness, labels, people, portrait, limbs)
        ab = colourize.colour_planes(lightness, regions, owners, portrait, palette, scene)
        coloured = compose.chroma_onto(grey, ab, strength / DEFAULT_STRENGTH)
        if not labels or options.hair_color == common_pb2.HAIR_COLOR_UNSPECIFIED:
            return coloured
        # The hair's edge at the parser's full resolution.
        close = request.once("close_labels", lambda: self.parser.parse_faces(request.rgb, faces))
        hair = colourize.photo_hair(close, labels, person.whole(people, grey.shape[:2]))
        return colourize.tint_hair(coloured, hair, options.hair_color)


def group_candidates(faces: list[common_pb2.Face], weaker: list[common_pb2.Face]) -> list[common_pb2.Face]:
    """The faces of `weaker` of about the size of `faces` (GROUP_SIZE) and overlapping none of them."""
    boxes = np.array([box_of(face) for face in faces])
    typical = float(np.median(boxes[:, 2]))
    return [face for face in weaker
            if GROUP_SIZE[0] * typical <= face.box.width <= GROUP_SIZE[1] * typical
            and iou(box_of(face), boxes).max() < SAME_FACE]


def skin_share(labels: np.ndarray, box: common_pb2.Box) -> float:
    """The share of the face `box` that its parse (`labels`, photo size) calls skin or nose."""
    top, left = max(0, int(box.y)), max(0, int(box.x))
    inside = labels[top:int(box.y + box.height), left:int(box.x + box.width)]
    return float(np.isin(inside, (parsing.Label.SKIN, parsing.Label.NOSE)).mean()) if inside.size else 0.0
