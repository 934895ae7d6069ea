"""Hair colour: recolour the hair around each face towards the requested colour, in Lab.

A deterministic edit, not something the small network learns: the hair
region is the band above and around a face (from its box, minus the face
itself, from the 68 landmarks when present), narrowed to pixels that look
like the hair sampled just above the forehead, then cut out by GrabCut seeded
with those pixels, feathered. Colour and GrabCut alone bleed into backgrounds
of the hair's own colour (dark hair before a dark room), and where the band
above the forehead shows the room (a tilted head) they sample the room and
recolour it instead of the hair. So when a person mask is given (MediaPipe's
selfie segmentation, `segmentation.person`, which counts hair as person) the
region is cut to the person before sampling and GrabCut, and the feathered
weight is multiplied by the person probability: the room behind stays as it
was. Within the person there is still no hair-parsing model, so clothes or a
hat of the hair's colour touching the hair can be recoloured too, wisps the
mask only half covers change only partly, and hair below the jaw line is
left out. Under that weight the Lab colour is moved to the target's
mean while the hair's own texture (its deviations from its mean) is kept. A
black-and-white result only gets the target lightness. HAIR_COLOR_UNSPECIFIED
(auto) leaves the hair as the model made it.
"""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.generator.planes import LAB_SCALE, lab_to_rgb, rgb_to_lab
from services.vision.person import window

#: Target CIELAB (L 0..100, a, b) per colour.
TARGETS = {
    common_pb2.BLACK: (18.0, 1.0, 2.0),
    common_pb2.BROWN: (32.0, 10.0, 20.0),
    common_pb2.BLOND: (68.0, 5.0, 32.0),
    common_pb2.RED: (42.0, 38.0, 42.0),
    common_pb2.GREY: (66.0, 0.0, 3.0),
}
#: How much of the hair's own lightness and chroma variation is kept.
KEEP_TEXTURE = (0.8, 0.3, 0.3)
#: Colour distance (normalised Lab) at which a pixel stops counting as hair.
HAIR_SPREAD = 0.18
#: Person probability from which a pixel may be hair (the mask is near 0 or 1 away from its edges).
PERSON_THRESHOLD = 0.5
#: GrabCut works on the head window shrunk to this side, with this many iterations.
GRABCUT_SIDE = 192
GRABCUT_ITERATIONS = 3


def head_window(face: common_pb2.Face, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the photo around the face where its hair can be."""
    box = face.box
    top, bottom = int(box.y - 0.9 * box.height), int(box.y + 1.0 * box.height)
    left, right = int(box.x - 0.6 * box.width), int(box.x + 1.6 * box.width)
    return slice(max(top, 0), min(bottom, height)), slice(max(left, 0), min(right, width))


def segment(rgb: np.ndarray, sure: np.ndarray, likely: np.ndarray, possible: np.ndarray, never: np.ndarray) -> np.ndarray:
    """Hair pixels by GrabCut, seeded with colour-matched (`likely`) and excluded pixels.

    Colour alone cannot tell dark hair from a dark room behind it; GrabCut adds
    a colour model of the surroundings and a preference for following edges.
    Runs on a window at most GRABCUT_SIDE on a side, for speed.
    """
    scale = min(1.0, GRABCUT_SIDE / max(rgb.shape[:2]))
    small = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    def shrink(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST) > 0
    seeds = np.full(small[::-1], cv2.GC_BGD, np.uint8)
    seeds[shrink(possible)] = cv2.GC_PR_BGD
    seeds[shrink(likely)] = cv2.GC_PR_FGD
    seeds[shrink(sure)] = cv2.GC_FGD
    seeds[shrink(never)] = cv2.GC_BGD
    if not np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).any() or not (seeds == cv2.GC_BGD).any():
        return np.zeros(rgb.shape[:2], bool)
    bgr = cv2.cvtColor(cv2.resize(rgb, small, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    models = (np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64))
    cv2.grabCut(bgr, seeds, None, *models, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    hair = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8)
    return cv2.resize(hair, rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0


def hair_weight(lab: np.ndarray, rgb: np.ndarray, face: common_pb2.Face, rows: slice, cols: slice,
                person: np.ndarray | None = None) -> np.ndarray:
    """0..1 hair weight over the window `lab`/`rgb` (the photo at rows, cols).

    With `person` (the window's person probability) only the person can be
    hair: the colour is sampled there, GrabCut takes everything else for
    background, and the feathered weight is multiplied by the probability.
    """
    shape = lab.shape[:2]
    box = face.box
    cx, cy = box.x + box.width / 2 - cols.start, box.y - rows.start
    head = np.zeros(shape, np.uint8)
    cv2.ellipse(head, (int(cx), int(cy + 0.3 * box.height)), (int(0.78 * box.width), int(0.95 * box.height)),
                0, 0, 360, 1, -1)
    head[int(cy + 0.9 * box.height):] = 0  # stop at the jaw line: neck and shoulders are not hair
    skin = np.zeros(shape, np.uint8)
    if len(face.landmarks) == 68:
        points = np.array([(p.x - cols.start, p.y - rows.start) for p in face.landmarks], np.float32)
        brows = points[17:27].copy()
        brows[:, 1] -= 0.12 * box.height  # the forehead above the brows is skin too
        cv2.fillConvexPoly(skin, cv2.convexHull(np.concatenate([points[:17], brows]).astype(np.int32)), 1)
    else:
        cv2.ellipse(skin, (int(cx), int(cy + 0.55 * box.height)), (int(0.45 * box.width), int(0.58 * box.height)),
                    0, 0, 360, 1, -1)
    region = (head > 0) & (skin == 0)
    if person is not None:
        region &= person >= PERSON_THRESHOLD
    # The hair's colour: the region's median in a band just above the face.
    band = region.copy()
    band[max(int(cy + 0.1 * box.height), 0):] = False
    band[:max(int(cy - 0.35 * box.height), 0)] = False
    sample = lab[band] if band.sum() >= 16 else lab[region]
    if len(sample) == 0:
        return np.zeros(shape, np.float32)
    distance = np.linalg.norm(lab - np.median(sample, axis=0), axis=2)
    close = distance < HAIR_SPREAD
    hair = segment(rgb, band & close, region & close, region, skin > 0)
    weight = hair * np.exp(-0.5 * (distance / HAIR_SPREAD) ** 2)
    feather = max(1.0, 0.03 * box.width)
    weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), feather)
    return weight if person is None else weight * person


def recolour(rgb: np.ndarray, faces: list[common_pb2.Face], colour: int, neutral: bool = False,
             person: np.ndarray | None = None) -> np.ndarray:
    """`rgb` with the hair of every face moved towards `colour`; unchanged for auto or no faces.

    `person` (`PersonSegmenter.probability` of the photo) limits the change to the people in it.
    """
    if colour not in TARGETS or not faces:
        return rgb
    target = np.array(TARGETS[colour], np.float32) / LAB_SCALE
    keep = np.array(KEEP_TEXTURE, np.float32)
    out = rgb.copy()
    height, width = rgb.shape[:2]
    for face in faces:
        rows, cols = head_window(face, height, width)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        lab = rgb_to_lab(out[rows, cols])
        inside = None if person is None else window(person, (height, width), rows, cols)
        weight = hair_weight(lab, out[rows, cols], face, rows, cols, inside)
        total = weight.sum()
        if total < 1.0:
            continue
        mean = (lab * weight[..., None]).sum(axis=(0, 1)) / total
        moved = target + keep * (lab - mean)
        if neutral:
            moved[..., 1:] = 0.0
        rgb = lab_to_rgb(lab + weight[..., None] * (moved - lab))
        out[rows, cols] = np.repeat(rgb[..., 1:2], 3, axis=2) if neutral else rgb
    return out
