"""Synthetic old-photo damage: from a clean photo, a damaged one with per-type masks.

Real damaged/clean pairs with pixel-exact labels do not exist in useful
numbers, so the detector (and the generator, which learns to undo the same
damage) train on clean photos aged by this module. The recipe follows the two
published ones that work on real scans: Bringing-Old-Photos-Back-to-Life
(Wan et al. 2020: blur, noise, JPEG, greyscale, scratch textures blended at
opacity 0.6-1.0) and Real-ESRGAN's degradation chain (Wang et al. 2021:
blur -> noise -> JPEG, randomised per sample). Damage happens in the order a
print ages and is then scanned:

1. tone of the print: colour, or black-and-white (some of it sepia-toned);
2. softness of the original optics (blur);
3. fading and yellowing: the print's tones pulled towards a warm paper colour,
   over the whole photo and/or in soft-edged patches;
4. stains: translucent blotches with a darker tide line, spots, dust and
   mould specks;
5. scratches, cracks and creases: thin curved strokes, dark or bright,
   textured, some branching;
6. tears, missing corners and edges, holes: paper-coloured with a bright
   fibrous torn border; they cover everything drawn before;
7. the scan: film grain, halftone screens, blur, sensor noise, JPEG.

Labels only mark damage that is visible: a stroke counts where its opacity is
at least `MIN_LABEL_ALPHA` and it changes the pixel by at least
`MIN_LABEL_CHANGE`, so a bright scratch across a white sky is not a label the
network is punished for missing. Global fading counts as FADING only when it
is strong (>= `FADING_LABEL_LEVEL`); mild fading is sampled from a range kept
apart from the labelled one, so the two are not confusable by construction.

Every probability and range is a field of `DamageParams`; README.md in this
folder tabulates them.

Usage (also by the generator's training)::

    synth = DamageSynthesizer()
    sample = synth(clean_rgb_uint8, np.random.default_rng(seed))
    sample.damaged, sample.clean, sample.masks[common_pb2.SCRATCH]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.noise import smooth_noise
from services.detector.engine import DAMAGE_TYPES

Range = tuple[float, float]

#: Smallest stroke opacity that is labelled as damage.
MIN_LABEL_ALPHA = 0.35
#: Smallest change of a pixel (0..1, max over channels) that is labelled as damage.
MIN_LABEL_CHANGE = 0.06
#: Fading strength from which a pixel is labelled FADING.
FADING_LABEL_LEVEL = 0.25


@dataclass(frozen=True)
class DamageParams:
    """Probabilities (p_*) and uniform ranges (low, high) of every damage kind.

    Sizes are in pixels of the photo as given, so scale the photo first when
    damage should look bigger or smaller. Intensities are on a 0..1 scale.
    """

    # 1. print tone. BOPB uses 10% greyscale; old photos are mostly B&W, so more here.
    p_grayscale: float = 0.35
    p_sepia: float = 0.5  # of the greyscale prints
    sepia_strength: Range = (0.3, 1.0)
    # 2. softness of the original (BOPB: sigma 1-5 on 256 px; milder here, the scan blurs again).
    p_optics_blur: float = 0.3
    optics_blur_sigma: Range = (0.5, 2.0)
    # 3. fading and yellowing: blend towards a warm paper colour.
    p_global_fade: float = 0.4
    p_fade_labelled: float = 0.5  # of the global fades, the strong (labelled) ones
    mild_fade: Range = (0.03, 0.15)  # unlabelled: every old print is a little faded
    strong_fade: Range = (0.32, 0.6)
    p_local_fade: float = 0.3
    local_fade: Range = (0.35, 0.75)
    local_fade_size: Range = (0.25, 0.7)  # of the shorter side
    # 4. stains, spots, specks.
    p_blotch: float = 0.35
    blotch_count: Range = (1, 3)
    blotch_size: Range = (0.08, 0.35)  # of the shorter side
    blotch_opacity: Range = (0.3, 0.8)
    p_spots: float = 0.45
    spot_count: Range = (2, 25)
    spot_radius: Range = (1.0, 6.0)
    p_specks: float = 0.4
    speck_count: Range = (10, 120)
    speck_radius: Range = (0.5, 1.8)
    # 5. scratches (BOPB: scratch textures at opacity 0.6-1.0).
    p_scratches: float = 0.6
    scratch_count: Range = (1, 7)
    scratch_width: Range = (1.0, 3.5)
    scratch_opacity: Range = (0.6, 1.0)
    scratch_length: Range = (0.2, 1.2)  # of the diagonal
    p_crack: float = 0.25
    crack_branches: Range = (2, 6)
    p_crease: float = 0.1
    crease_width: Range = (3.0, 8.0)
    # 5b. what real scans show most (README.md, "What real damage looks like"): networks of
    #     angular, branching emulsion cracks that expose the paper, and straight hairlines.
    #     Off in the defaults, which reproduce the recorded models' data; REAL_SCAN turns them on.
    p_crack_network: float = 0.0
    network_cracks: Range = (1, 6)
    crack_length: Range = (0.3, 1.4)  # of the diagonal
    crack_segment: Range = (3.0, 24.0)  # pixels between kinks
    crack_turn: float = 0.45  # sd of the heading change at a kink, rad
    crack_width: Range = (1.0, 3.5)
    crack_opacity: Range = (0.75, 1.0)
    p_crack_dark: float = 0.2  # dirt-filled cracks are darker than the photo
    p_faint_crack: float = 0.0  # of the networks, hairline cracks that barely lift the tone (faces on old_w_scratch_b)
    faint_crack_opacity: Range = (0.25, 0.6)
    p_edge_crack: float = 0.0  # of the networks, cracks that open along the photo's own edges (brows, hairlines)
    edge_crack_segment: Range = (3.0, 9.0)  # shorter runs than a free crack's, so the path can follow a curve
    p_dark_crossing: float = 0.0  # of the networks, cracks that cross the photo's dark thin features (brows, eyes)
    p_hairlines: float = 0.0
    hairline_count: Range = (1, 4)
    hairline_width: Range = (0.7, 1.5)
    hairline_opacity: Range = (0.4, 0.95)
    p_foxing: float = 0.0
    foxing_count: Range = (3, 40)
    # Dust fibres and hairs lying on the negative or the scanner glass: short curled lines a pixel wide, bright
    # (printed through the negative) or dark, scattered over the sepia portrait's dark dress in the real scans.
    p_fibres: float = 0.0
    fibre_count: Range = (3, 40)
    fibre_length: Range = (4.0, 24.0)  # pixels
    fibre_curl: Range = (0.5, 1.2)  # sd of the heading change per 3 px step, rad (smoothed over five steps)
    fibre_opacity: Range = (0.35, 0.85)
    # 5c. lettering that belongs to the photo (signs, shop fronts, captions): thin bright or dark strokes
    #     that are not damage and must stay. Drawn into the photo itself, never labelled; off by default.
    p_lettering: float = 0.0
    lettering_count: Range = (1, 3)
    lettering_scale: Range = (0.4, 2.2)  # Hershey font scale: strokes of a few to tens of pixels
    # 6. tears and missing paper.
    p_tear: float = 0.3
    tear_size: Range = (0.1, 0.45)  # of the shorter side
    # 7. the scan (Real-ESRGAN's chain, BOPB's ranges where they keep damage visible:
    #    noise sigma 5-50/255 and JPEG 40-100 there; noise capped lower so specks stay labels).
    p_grain: float = 0.5
    grain_amount: Range = (0.01, 0.05)
    p_halftone: float = 0.07
    halftone_period: Range = (3.0, 6.0)
    p_scan_blur: float = 0.3
    scan_blur_sigma: Range = (0.3, 1.0)
    p_noise: float = 0.5
    noise_sigma: Range = (1 / 255, 15 / 255)
    p_jpeg: float = 0.6
    jpeg_quality: Range = (40, 100)


#: Letters and fonts of the lettering drawn into photos.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)

#: Damage as real scans show it: the defaults plus crack networks, hairlines and foxing, mostly
#: black-and-white or sepia prints. The detector trains and is benchmarked on this.
REAL_SCAN = DamageParams(
    p_grayscale=0.6, p_sepia=0.6, p_scratches=0.35, p_crack_network=0.55, p_hairlines=0.35, p_foxing=0.15,
)
#: REAL_SCAN over photos that sometimes carry lettering of their own (the detector took a shop sign's letters
#: for cracks on old_d.png): what training draws from; the benchmark keeps REAL_SCAN.
LETTERED_SCAN = replace(REAL_SCAN, p_lettering=0.3)
#: LETTERED_SCAN where a third of the crack networks are faint: a thin crack a tenth brighter than the skin
#: under it is what the detector still misses on real faces (phase 10); only those pixels that change
#: by MIN_LABEL_CHANGE are labelled, so a crack too faint to see is not asked for.
FAINT_SCAN = replace(LETTERED_SCAN, p_faint_crack=0.35)
#: LETTERED_SCAN where some crack networks open along the photo's own edges: the crack along the cracked boy's
#: brow (old_w_scratch_b.png) is missed by phase 10 at every scale, as if it were part of the brow; emulsion
#: cracks do run along the print's edges of density, where the gelatine was stressed unevenly.
EDGED_SCAN = replace(LETTERED_SCAN, p_edge_crack=0.4)
#: LETTERED_SCAN where some crack networks cross the photo's dark thin features: where a bright crack crosses a
#: brow it is a short white chip over a dark band, the look of an eye's white between its lids, and phase 10
#: misses it on the cracked boy (old_w_scratch_b.png) even pasted onto his flat vest (README.md).
CROSSING_SCAN = replace(LETTERED_SCAN, p_dark_crossing=0.4)
#: LETTERED_SCAN with dust fibres and hairs (labelled STAIN, as dust is) in 40% of the prints.
FIBRED_SCAN = replace(LETTERED_SCAN, p_fibres=0.4)


@dataclass
class DamageSample:
    #: HxWx3 uint8 RGB, the aged and scanned photo.
    damaged: np.ndarray
    #: HxWx3 uint8 RGB restoration target: the clean photo in the print's tone (grey if B&W).
    clean: np.ndarray
    #: DamageType -> HxW uint8 mask (0 or 255), one per type in DAMAGE_TYPES.
    masks: dict[int, np.ndarray]
    #: 0..1, how strongly the whole photo is faded.
    fading_score: float
    #: True when the print is black-and-white (sepia included).
    grayscale: bool


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds))


def _happens(rng: np.random.Generator, probability: float) -> bool:
    """A draw that consumes no randomness for a kind switched off, so recipes without the newer
    kinds (crack networks, hairlines, foxing) make exactly the samples they always made."""
    return probability > 0 and rng.random() < probability


def _count(rng: np.random.Generator, bounds: Range) -> int:
    return int(rng.integers(int(bounds[0]), int(bounds[1]) + 1))


def blob(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float], radius: float,
         softness: float = 0.15) -> np.ndarray:
    """An irregular filled shape (0..1) of about `radius`: a disc with a noisy edge."""
    height, width = shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(y - centre[1], x - centre[0]) / max(radius, 1.0)
    wobble = 0.35 * smooth_noise(rng, shape, max(radius / 2, 2.0))
    edge = 1.0 - distance + wobble
    return np.clip(edge / softness, 0.0, 1.0)


def _random_point(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[float, float]:
    return float(rng.uniform(0, shape[1])), float(rng.uniform(0, shape[0]))


def random_walk(rng: np.random.Generator, start: tuple[float, float], length: float, heading: float,
                curl: float) -> np.ndarray:
    """Points of a smoothly curving path: the heading drifts by up to `curl` rad per step."""
    step = 3.0
    count = max(2, int(length / step))
    turns = np.cumsum(rng.normal(0, curl, count))
    turns = np.convolve(turns, np.ones(5) / 5, mode="same")
    angles = heading + turns
    steps = np.stack([np.cos(angles), np.sin(angles)], 1) * step
    return np.asarray(start, np.float32) + np.cumsum(steps, 0).astype(np.float32)


def _stroke(alpha: np.ndarray, points: np.ndarray, width: float, opacity: float) -> None:
    """Draw an anti-aliased polyline into `alpha` (max-composited), 4x sub-pixel precision."""
    canvas = np.zeros_like(alpha)
    shift = 2
    pts = np.round(points * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, float(opacity), max(1, int(round(width))), cv2.LINE_AA, shift)
    np.maximum(alpha, canvas, out=alpha)


def _composite(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Blend a per-pixel colour (HxWx3 or 3) over `image` with opacity `alpha`."""
    a = alpha[..., None]
    return image * (1 - a) + colour * a


def _visible(before: np.ndarray, after: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    change = np.abs(after - before).max(axis=2)
    return (alpha >= MIN_LABEL_ALPHA) & (change >= MIN_LABEL_CHANGE)


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray, label: np.ndarray) -> np.ndarray:
    """`colour` over `image` with opacity `alpha`; where that is visible is added to `label`."""
    damaged = _composite(image, alpha, colour)
    label |= _visible(image, damaged, alpha)
    return damaged


def crack_path(rng: np.random.Generator, start: np.ndarray, heading: float, length: float,
               segment: Range, turn: float) -> np.ndarray:
    """Points of an emulsion crack: straight runs between kinks, each run itself slightly jagged."""
    points = [np.asarray(start, np.float32)]
    travelled = 0.0
    while travelled < length:
        run = _uniform(rng, segment)
        heading += float(np.clip(rng.normal(0, turn), -1.2, 1.2))
        direction = np.array([np.cos(heading), np.sin(heading)], np.float32)
        end = points[-1] + direction * run
        middle = (points[-1] + end) / 2 + np.array([-direction[1], direction[0]]) * rng.normal(0, 0.12 * run)
        points += [middle.astype(np.float32), end]
        travelled += run
    return np.stack(points)


@dataclass(frozen=True)
class EdgeField:
    """Where a photo's own edges are and which way they run, for cracks that follow them."""

    #: HxW direction along the edge (rad), perpendicular to the luma gradient.
    tangent: np.ndarray
    #: HxW gradient magnitude over the photo's largest, 0..1.
    strength: np.ndarray

    #: An edge weaker than this (of the photo's strongest) no longer steers a crack.
    STEERING = 0.12

    @classmethod
    def of(cls, image: np.ndarray) -> EdgeField:
        luma = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (0, 0), 1.5)
        gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = np.hypot(gx, gy)
        return cls(np.arctan2(gx, -gy), magnitude / max(float(magnitude.max()), 1e-6))

    def _at(self, point: np.ndarray) -> tuple[int, int]:
        height, width = self.strength.shape
        return int(np.clip(point[1], 0, height - 1)), int(np.clip(point[0], 0, width - 1))

    def start(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A point on one of the strongest edges (top 3%) and the edge's heading, either way along it."""
        strength = self.strength.ravel()
        strong = np.flatnonzero(strength >= np.quantile(strength, 0.97))
        y, x = np.unravel_index(int(rng.choice(strong)), self.strength.shape)
        return np.array([x, y], np.float32), float(self.tangent[y, x]) + (np.pi if rng.random() < 0.5 else 0.0)

    def steer(self, point: np.ndarray, heading: float, rng: np.random.Generator, turn: float) -> float:
        """The next run's heading: along the edge under `point` (keeping the direction of travel), or a free
        kink where there is no edge."""
        y, x = self._at(point)
        if self.strength[y, x] < self.STEERING:
            return heading + float(np.clip(rng.normal(0, turn), -1.2, 1.2))
        along = float(self.tangent[y, x])
        if np.cos(along - heading) < 0:
            along += np.pi
        return along + float(rng.normal(0, turn * 0.3))

    def settle(self, point: np.ndarray, offset: float) -> np.ndarray:
        """`point` moved across the edge near it (within 4 px) onto its crest, then `offset` px off it: a
        straight run leaves a curved edge, and without this the crack drifts away from what it follows."""
        y, x = self._at(point)
        if self.strength[y, x] < self.STEERING:
            return point
        tangent = float(self.tangent[y, x])
        normal = np.array([-np.sin(tangent), np.cos(tangent)], np.float32)
        candidates = point + np.arange(-4, 5, dtype=np.float32)[:, None] * normal
        crest = candidates[int(np.argmax([self.strength[self._at(c)] for c in candidates]))]
        return (crest + normal * offset).astype(np.float32)


def edge_crack_path(rng: np.random.Generator, field: EdgeField, length: float, segment: Range,
                    turn: float) -> np.ndarray:
    """Points of a crack that starts on one of the photo's strong edges and runs along it while there is one."""
    start, heading = field.start(rng)
    offset = rng.uniform(-2.0, 2.0)  # beside the edge or on it, the same all along
    points = [field.settle(start, offset)]
    travelled = 0.0
    while travelled < length:
        run = _uniform(rng, segment)
        heading = field.steer(points[-1], heading, rng, turn)
        direction = np.array([np.cos(heading), np.sin(heading)], np.float32)
        end = field.settle(points[-1] + direction * run, offset)
        middle = (points[-1] + end) / 2 + np.array([-direction[1], direction[0]]) * rng.normal(0, 0.08 * run)
        points += [middle.astype(np.float32), end]
        travelled += run
    return np.stack(points)


@dataclass(frozen=True)
class DarkFeatures:
    """Where a photo's dark thin features are: brows, eyes, lips, nostrils, dark strands and lines."""

    #: K x 2 (x, y) pixels whose black top-hat (how much darker than their closed neighbourhood) is in the
    #: photo's top 2%, and at least FLOOR.
    points: np.ndarray

    #: Smallest darkness (0..1 luma) that counts as a feature: grain in a flat area is not one.
    FLOOR = 0.05
    #: Side of the closing, pixels: features up to about this wide (a brow at portrait-crop scale).
    SIDE = 9

    @classmethod
    def of(cls, image: np.ndarray) -> DarkFeatures:
        """Of `image`, H x W x 3 float32 RGB in 0..1."""
        luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cls.SIDE, cls.SIDE))
        darkness = cv2.morphologyEx(luma, cv2.MORPH_BLACKHAT, kernel)
        level = max(float(np.quantile(darkness, 0.98)), cls.FLOOR)
        y, x = np.nonzero(darkness >= level)
        return cls(np.stack([x, y], 1).astype(np.float32))

    def crossing_path(self, rng: np.random.Generator, length: float, segment: Range,
                      turn: float) -> tuple[np.ndarray, float] | None:
        """A crack grown both ways from a dark feature, so it crosses it; None where the photo has none."""
        if not len(self.points):
            return None
        anchor = self.points[int(rng.integers(0, len(self.points)))]
        heading = rng.uniform(0, 2 * np.pi)
        share = rng.uniform(0.2, 0.8)
        behind = crack_path(rng, anchor, heading + np.pi, length * share, segment, turn)
        ahead = crack_path(rng, anchor, heading, length * (1 - share), segment, turn)
        # Both are (point, middle, point, ...) runs from the anchor, so joined they still pair up for _uneven_stroke.
        return np.concatenate([behind[::-1], ahead[1:]]), heading


def _uneven_stroke(alpha: np.ndarray, points: np.ndarray, width: float, opacity: float,
                   rng: np.random.Generator) -> None:
    """A polyline whose width changes from run to run, as a crack's exposed paper does."""
    for start in range(0, len(points) - 1, 2):
        run = points[start:start + 3]
        _stroke(alpha, run, max(1.0, width * rng.uniform(0.6, 1.4)), opacity * rng.uniform(0.85, 1.0))


def _flakes(alpha: np.ndarray, points: np.ndarray, width: float, opacity: float, rng: np.random.Generator) -> None:
    """Chips of emulsion lost along a crack: small irregular bright patches touching it."""
    for index in rng.integers(0, len(points), int(rng.integers(1, max(2, len(points) // 6)))):
        radius = rng.uniform(0.8, 1.5) * width
        corners = rng.integers(3, 6)
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        offset = rng.normal(0, width * 0.8, 2)
        polygon = points[index] + offset + np.stack([np.cos(angles), np.sin(angles)], 1) * radius * rng.uniform(
            0.4, 1.0, (corners, 1))
        cv2.fillPoly(alpha, [np.round(polygon * 4).astype(np.int32)], float(opacity), cv2.LINE_AA, 2)


def _edge_start(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """A point on the photo's border and a heading into it: cracks often run in from an edge."""
    height, width = shape
    side = int(rng.integers(0, 4))
    along = rng.uniform(0, 1)
    point, inward = [(along * width, 0.0), (along * width, height - 1.0), (0.0, along * height),
                     (width - 1.0, along * height)][side], [np.pi / 2, -np.pi / 2, 0.0, np.pi][side]
    return np.asarray(point, np.float32), inward + rng.uniform(-0.7, 0.7)


class DamageSynthesizer:
    """Ages clean photos; one instance is reusable and holds no per-sample state."""

    def __init__(self, params: DamageParams | None = None) -> None:
        self.params = params or DamageParams()

    def _lettering(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Words painted into the photo, part of what the clean photo shows: a shop sign's letters are thin
        bright strokes on a dark ground, as cracks are, and a detector that never saw them fills them in."""
        height, width = image.shape[:2]
        for _ in range(_count(rng, self.params.lettering_count)):
            text = "".join(rng.choice(list(LETTERS), size=int(rng.integers(3, 13))))
            light = rng.random() < 0.6
            colour = rng.uniform(0.75, 1.0, 3) if light else rng.uniform(0.0, 0.25, 3)
            ink = np.zeros((height, width), np.uint8)  # drawn as coverage (OpenCV draws text on 8-bit only)
            cv2.putText(ink, text, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                        int(rng.choice(FONTS)), _uniform(rng, self.params.lettering_scale), 255,
                        int(rng.integers(1, 4)), cv2.LINE_AA)
            alpha = (ink.astype(np.float32) / 255.0)[..., None]
            image = image * (1 - alpha) + colour.astype(np.float32) * alpha
        return image

    def __call__(self, photo: np.ndarray, rng: np.random.Generator, *, undamaged: bool = False) -> DamageSample:
        """Damage an HxWx3 uint8 RGB photo.

        With `undamaged`, only what every scan of an intact print shows is
        applied (tone, mild fading, optics, grain, halftone, noise, JPEG) and
        every mask is empty: the negatives that keep false alarms down.
        """
        p = self.params
        image = photo.astype(np.float32) / 255.0
        shape = image.shape[:2]
        if _happens(rng, p.p_lettering):
            image = self._lettering(image, rng)
        grayscale = rng.random() < p.p_grayscale
        if grayscale:
            image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        clean = image.copy()
        if grayscale and rng.random() < p.p_sepia:
            image = self._sepia(image, _uniform(rng, p.sepia_strength))
        if rng.random() < p.p_optics_blur:
            image = cv2.GaussianBlur(image, (0, 0), _uniform(rng, p.optics_blur_sigma))

        labels = {kind: np.zeros(shape, bool) for kind in DAMAGE_TYPES}
        image, fade = self._fade(image, rng, allow_labelled=not undamaged)
        labels[common_pb2.FADING] = fade >= FADING_LABEL_LEVEL
        if not undamaged:
            image = self._stains(image, rng, labels[common_pb2.STAIN])
            image = self._scratches(image, rng, labels[common_pb2.SCRATCH])
            image = self._crack_network(image, rng, labels[common_pb2.SCRATCH])
            image = self._hairlines(image, rng, labels[common_pb2.SCRATCH])
            image = self._tears(image, rng, labels)
        image = self._scan(image, rng)
        masks = {kind: labels[kind].astype(np.uint8) * 255 for kind in DAMAGE_TYPES}
        return DamageSample(
            damaged=image,
            clean=np.clip(clean * 255 + 0.5, 0, 255).astype(np.uint8),
            masks=masks,
            fading_score=float(np.clip(fade.mean() * 2.0, 0.0, 1.0)),
            grayscale=grayscale,
        )

    @staticmethod
    def _sepia(image: np.ndarray, strength: float) -> np.ndarray:
        luma = image[..., :1]
        toned = np.concatenate([luma ** 0.85, luma ** 1.0 * 0.92 + 0.03, luma ** 1.2 * 0.75 + 0.02], axis=2)
        return image * (1 - strength) + np.clip(toned, 0, 1) * strength

    def _fade(self, image: np.ndarray, rng: np.random.Generator, allow_labelled: bool) -> tuple[np.ndarray, np.ndarray]:
        """Pull tones towards a warm paper colour; returns the image and the per-pixel strength."""
        p = self.params
        shape = image.shape[:2]
        fade = np.zeros(shape, np.float32)
        if rng.random() < p.p_global_fade:
            strong = allow_labelled and rng.random() < p.p_fade_labelled
            fade[:] = _uniform(rng, p.strong_fade if strong else p.mild_fade)
        if allow_labelled and rng.random() < p.p_local_fade:
            radius = _uniform(rng, p.local_fade_size) * min(shape)
            patch = blob(rng, shape, _random_point(rng, shape), radius, softness=0.5)
            fade = np.maximum(fade, patch * _uniform(rng, p.local_fade))
        if not fade.any():
            return image, fade
        paper = np.array([0.95, 0.9, 0.72], np.float32) + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
        return _composite(image, fade, np.clip(paper, 0, 1)), fade

    def _stains(self, image: np.ndarray, rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
        p = self.params
        shape = image.shape[:2]
        alpha = np.zeros(shape, np.float32)
        colour = np.zeros(image.shape, np.float32)
        if rng.random() < p.p_blotch:
            for _ in range(_count(rng, p.blotch_count)):
                radius = _uniform(rng, p.blotch_size) * min(shape) / 2
                shape_alpha = blob(rng, shape, _random_point(rng, shape), radius)
                # A tide line: water stains are darker where the drying edge stopped.
                rim = np.clip(shape_alpha * (1 - shape_alpha) * 4, 0, 1) * 0.5
                opacity = _uniform(rng, p.blotch_opacity)
                tint = np.array([0.55, 0.4, 0.2], np.float32) * rng.uniform(0.5, 1.3) + rng.uniform(-0.1, 0.1, 3)
                stain_alpha = np.clip((shape_alpha * 0.6 + rim) * opacity, 0, 1)
                self._add_layer(alpha, colour, stain_alpha, np.clip(tint, 0, 1))
        if rng.random() < p.p_spots:
            self._dots(rng, alpha, colour, _count(rng, p.spot_count), p.spot_radius, clustered=False)
        if rng.random() < p.p_specks:
            self._dots(rng, alpha, colour, _count(rng, p.speck_count), p.speck_radius, clustered=rng.random() < 0.5)
        if _happens(rng, p.p_foxing):
            self._foxing(rng, alpha, colour, _count(rng, p.foxing_count))
        if _happens(rng, p.p_fibres):
            self._fibres(rng, alpha, colour, _count(rng, p.fibre_count))
        return _paint(image, alpha, colour, label)

    @staticmethod
    def _add_layer(alpha: np.ndarray, colour: np.ndarray, layer_alpha: np.ndarray, layer_colour: np.ndarray) -> None:
        """Stack one layer onto an (alpha, colour) pair with the 'over' operator."""
        new_alpha = layer_alpha + alpha * (1 - layer_alpha)
        weight = np.where(new_alpha > 0, layer_alpha / np.maximum(new_alpha, 1e-6), 0)[..., None]
        colour[:] = colour * (1 - weight) + layer_colour * weight
        alpha[:] = new_alpha

    def _dots(self, rng: np.random.Generator, alpha: np.ndarray, colour: np.ndarray, count: int,
              radius_range: Range, clustered: bool) -> None:
        """Spots and specks: small dark (dirt, mould) or bright (dust on the negative) dots."""
        shape = alpha.shape
        layer = np.zeros(shape, np.float32)
        centre = _random_point(rng, shape)
        spread = min(shape) * 0.15
        for _ in range(count):
            if clustered:  # mould grows in colonies
                x = centre[0] + rng.normal(0, spread)
                y = centre[1] + rng.normal(0, spread)
            else:
                x, y = _random_point(rng, shape)
            radius = _uniform(rng, radius_range)
            axes = (max(1, int(round(radius * rng.uniform(0.6, 1.4) * 4))), max(1, int(round(radius * 4))))
            cv2.ellipse(layer, (int(x * 4), int(y * 4)), axes, float(rng.uniform(0, 180)), 0, 360,
                        float(rng.uniform(0.7, 1.0)), -1, cv2.LINE_AA, 2)
        bright = rng.random() < 0.4
        tone = rng.uniform(0.85, 1.0) if bright else rng.uniform(0.0, 0.25)
        self._add_layer(alpha, colour, layer, np.full(3, tone, np.float32))

    def _foxing(self, rng: np.random.Generator, alpha: np.ndarray, colour: np.ndarray, count: int) -> None:
        """Foxing: rust-brown spots with soft, darker-centred edges, from the paper's own ageing."""
        shape = alpha.shape
        for _ in range(count):
            radius = rng.uniform(1.5, 7.0)
            spot = blob(rng, shape, _random_point(rng, shape), radius, softness=0.4)
            tint = np.array([0.55, 0.33, 0.15], np.float32) * rng.uniform(0.7, 1.2)
            self._add_layer(alpha, colour, np.clip(spot * rng.uniform(0.4, 0.85), 0, 1), np.clip(tint, 0, 1))

    def _fibres(self, rng: np.random.Generator, alpha: np.ndarray, colour: np.ndarray, count: int) -> None:
        """Dust fibres and hairs: short curled strokes a pixel wide, one tone for all (dust on the negative prints
        bright, on the glass dark), each fainter or stronger. Unlike a scratch they are short and curl; unlike a
        speck they are lines. No recipe drew them before, and every engine leaves them on the real scan's dress."""
        p = self.params
        layer = np.zeros(alpha.shape, np.float32)
        for _ in range(count):
            points = random_walk(rng, _random_point(rng, alpha.shape), _uniform(rng, p.fibre_length),
                                 rng.uniform(0, 2 * np.pi), _uniform(rng, p.fibre_curl))
            _stroke(layer, points, 1.0, _uniform(rng, p.fibre_opacity))
        tone = rng.uniform(0.8, 1.0) if rng.random() < 0.7 else rng.uniform(0.0, 0.2)
        self._add_layer(alpha, colour, layer, np.full(3, tone, np.float32))

    def _scratches(self, image: np.ndarray, rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
        p = self.params
        shape = image.shape[:2]
        if rng.random() >= p.p_scratches:
            return image
        diagonal = float(np.hypot(*shape))
        damaged = image
        for _ in range(_count(rng, p.scratch_count)):
            alpha = np.zeros(shape, np.float32)
            opacity = _uniform(rng, p.scratch_opacity)
            start, heading = _random_point(rng, shape), rng.uniform(0, 2 * np.pi)
            if rng.random() < p.p_crease:  # a fold: a wide, soft, bright, nearly straight band
                points = random_walk(rng, start, diagonal, heading, 0.005)
                _stroke(alpha, points, _uniform(rng, p.crease_width), opacity)
                alpha = cv2.GaussianBlur(alpha, (0, 0), 1.0)
            elif rng.random() < p.p_crack:  # emulsion cracks: a jagged trunk with branches
                points = random_walk(rng, start, _uniform(rng, p.scratch_length) * diagonal * 0.6, heading, 0.25)
                _stroke(alpha, points, _uniform(rng, (1.0, 2.0)), opacity)
                for _ in range(_count(rng, p.crack_branches)):
                    origin = points[rng.integers(0, len(points))]
                    branch = random_walk(rng, tuple(origin), _uniform(rng, (0.05, 0.3)) * diagonal,
                                         heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.4), 0.25)
                    _stroke(alpha, branch, 1.0, opacity * rng.uniform(0.7, 1.0))
            else:
                points = random_walk(rng, start, _uniform(rng, p.scratch_length) * diagonal, heading, 0.03)
                _stroke(alpha, points, _uniform(rng, p.scratch_width), opacity)
            # Texture: scratches are broken and uneven along their length.
            texture = np.clip(0.75 + 0.35 * smooth_noise(rng, shape, 6.0), 0.2, 1.0)
            alpha *= texture
            bright = rng.random() < 0.6
            tone = rng.uniform(0.8, 1.0) if bright else rng.uniform(0.0, 0.2)
            damaged = _paint(damaged, alpha, np.full(3, tone, np.float32), label)
        return damaged

    def _crack_network(self, image: np.ndarray, rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
        """Branching angular cracks that show the paper (cream, or dark with dirt), across anything."""
        p = self.params
        if not _happens(rng, p.p_crack_network):
            return image
        shape = image.shape[:2]
        diagonal = float(np.hypot(*shape))
        alpha = np.zeros(shape, np.float32)
        width = _uniform(rng, p.crack_width)
        faint = _happens(rng, p.p_faint_crack)
        opacity = _uniform(rng, p.faint_crack_opacity if faint else p.crack_opacity)
        if faint:
            width = min(width, 2.0)
        edges = EdgeField.of(image) if _happens(rng, p.p_edge_crack) else None
        dark = DarkFeatures.of(image) if _happens(rng, p.p_dark_crossing) else None
        for _ in range(_count(rng, p.network_cracks)):
            trunk, heading = self._trunk(rng, shape, diagonal, edges, dark)
            _uneven_stroke(alpha, trunk, width, opacity, rng)
            if rng.random() < 0.5:
                _flakes(alpha, trunk, width, opacity, rng)
            for _ in range(int(rng.integers(0, 5))):
                origin = trunk[rng.integers(0, len(trunk))]
                branch = crack_path(rng, origin, heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.3),
                                    rng.uniform(0.05, 0.35) * diagonal, p.crack_segment, p.crack_turn)
                _uneven_stroke(alpha, branch, width * rng.uniform(0.5, 0.9), opacity, rng)
        # The exposed paper is uneven, and a scan softens the crack's edges a little.
        alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.3, 0.7))
        alpha *= np.clip(0.85 + 0.25 * smooth_noise(rng, shape, 4.0), 0.4, 1.0)
        if rng.random() < p.p_crack_dark:
            colour = np.full(3, rng.uniform(0.05, 0.3), np.float32)
        else:
            # Paper white, from neutral to slightly cream.
            warmth = rng.uniform(0.0, 0.1)
            colour = np.clip(np.array([1.0, 1.0 - warmth / 3, 1.0 - warmth], np.float32) * rng.uniform(0.82, 1.0),
                             0, 1)
        return _paint(image, alpha, colour, label)

    def _trunk(self, rng: np.random.Generator, shape: tuple[int, int], diagonal: float,
               edges: EdgeField | None, dark: DarkFeatures | None) -> tuple[np.ndarray, float]:
        """A crack's main path and its overall heading: along the photo's own edges (with `edges`, seven times in
        ten), across a dark feature (with `dark`, six times in ten), or free, half of those running in from the
        print's border. Recipes without edge or crossing cracks draw in the order they always did, so their
        recorded data (and the benchmark's) stays as it was."""
        p = self.params
        guided = p.p_edge_crack > 0 or p.p_dark_crossing > 0
        length = _uniform(rng, p.crack_length) * diagonal if guided else None
        if dark is not None and rng.random() < 0.6:
            crossing = dark.crossing_path(rng, length, p.crack_segment, p.crack_turn)
            if crossing is not None:
                return crossing
        if edges is not None and rng.random() < 0.7:
            trunk = edge_crack_path(rng, edges, length * 0.5, p.edge_crack_segment, p.crack_turn)
            return trunk, float(np.arctan2(*(trunk[-1] - trunk[0])[::-1]))
        if rng.random() < 0.5:
            start, heading = _edge_start(rng, shape)
        else:
            start, heading = np.asarray(_random_point(rng, shape), np.float32), rng.uniform(0, 2 * np.pi)
        if length is None:
            length = _uniform(rng, p.crack_length) * diagonal
        return crack_path(rng, start, heading, length, p.crack_segment, p.crack_turn), heading

    def _hairlines(self, image: np.ndarray, rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
        """Straight hairline scratches from handling: thin, long, faint or bright."""
        p = self.params
        if not _happens(rng, p.p_hairlines):
            return image
        shape = image.shape[:2]
        diagonal = float(np.hypot(*shape))
        damaged = image
        for _ in range(_count(rng, p.hairline_count)):
            alpha = np.zeros(shape, np.float32)
            points = random_walk(rng, _random_point(rng, shape), rng.uniform(0.3, 1.0) * diagonal,
                                 rng.uniform(0, 2 * np.pi), 0.004)
            _stroke(alpha, points, _uniform(rng, p.hairline_width), _uniform(rng, p.hairline_opacity))
            alpha *= np.clip(0.8 + 0.3 * smooth_noise(rng, shape, 10.0), 0.3, 1.0)
            tone = rng.uniform(0.85, 1.0) if rng.random() < 0.7 else rng.uniform(0.0, 0.2)
            damaged = _paint(damaged, alpha, np.full(3, tone, np.float32), label)
        return damaged

    def _tears(self, image: np.ndarray, rng: np.random.Generator, labels: dict[int, np.ndarray]) -> np.ndarray:
        """Missing paper at a corner, an edge or inside (a hole); it hides all earlier damage there."""
        p = self.params
        shape = image.shape[:2]
        if rng.random() >= p.p_tear:
            return image
        height, width = shape
        size = _uniform(rng, p.tear_size) * min(shape)
        where = rng.choice(["corner", "edge", "hole"], p=[0.45, 0.35, 0.2])
        if where == "corner":
            corner = (rng.choice([0, width]), rng.choice([0, height]))
            region = blob(rng, shape, corner, size * 1.2, softness=0.02)
        elif where == "edge":
            y, x = np.mgrid[0:height, 0:width].astype(np.float32)
            side = rng.integers(0, 4)
            distance = [y, height - 1 - y, x, width - 1 - x][side]
            ragged = size * 0.4 * (1 + 0.5 * smooth_noise(rng, shape, size / 2))
            region = np.clip((ragged - distance) / 1.5, 0, 1)
        else:
            region = blob(rng, shape, _random_point(rng, shape), size * 0.5, softness=0.05)
        # Torn edges fray: fine noise on the border, then a bright fibrous rim of exposed paper core.
        region = np.clip(region + 0.5 * smooth_noise(rng, shape, 1.5) * (region * (1 - region) * 4), 0, 1)
        inside = region >= 0.5
        if not inside.any():
            return image
        rim = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8), iterations=int(rng.integers(1, 3)))
        rim = (rim > 0) & ~inside
        paper = np.array([0.93, 0.9, 0.82], np.float32) + rng.uniform(-0.08, 0.05, 3).astype(np.float32)
        if rng.random() < 0.2:  # a dark backing board shows through instead of paper
            paper = rng.uniform(0.05, 0.3) * np.ones(3, np.float32)
        fibres = 0.03 * smooth_noise(rng, shape, 2.0)[..., None]
        damaged = image.copy()
        damaged[inside] = np.clip(paper + fibres, 0, 1)[inside]
        damaged[rim] = np.clip(0.97 + fibres, 0, 1)[rim] * 0.7 + damaged[rim] * 0.3
        torn = inside | rim
        labels[common_pb2.TEAR] |= torn
        for kind in (common_pb2.SCRATCH, common_pb2.STAIN, common_pb2.FADING):
            labels[kind] &= ~torn
        return damaged

    def _scan(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Film grain, halftone, scanner blur and noise, then JPEG; returns uint8."""
        p = self.params
        shape = image.shape[:2]
        if rng.random() < p.p_grain:
            grain = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), rng.uniform(0.5, 1.2))
            image = image + (grain / (grain.std() + 1e-6) * _uniform(rng, p.grain_amount))[..., None]
        if rng.random() < p.p_halftone:
            period = _uniform(rng, p.halftone_period)
            angle = rng.uniform(0, np.pi / 2)
            y, x = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
            u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
            screen = (np.cos(2 * np.pi * u / period) * np.cos(2 * np.pi * v / period) + 1) / 2
            dots = np.clip((image - screen[..., None]) * 4 + 0.5, 0, 1)
            image = image * 0.5 + cv2.GaussianBlur(dots, (0, 0), 0.7) * 0.5
        if rng.random() < p.p_scan_blur:
            image = cv2.GaussianBlur(image, (0, 0), _uniform(rng, p.scan_blur_sigma))
        if rng.random() < p.p_noise:
            image = image + rng.normal(0, _uniform(rng, p.noise_sigma), image.shape).astype(np.float32)
        pixels = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
        if rng.random() < p.p_jpeg:
            quality = int(_uniform(rng, p.jpeg_quality))
            ok, buffer = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                pixels = np.ascontiguousarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1])
        return pixels
