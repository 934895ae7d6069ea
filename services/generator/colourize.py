"""Colour for a black-and-white photo, region by region: a palette per region, spread by Levin's optimisation.

Why not the network's chroma: trained to predict colour from grey with a plain
regression, it learned the average colour of everything, a brown cast with
orange patches. Colour is instead chosen where the photo says what a region is,
and spread over the rest:

1. **Regions.** Face parsing (services/vision/parsing.py) labels each face's
   skin, lips, eyes, brows, hair, neck, clothes and hat, in a square half as
   wide again as the face's own (HEAD_ZOOM), so long hair and the clothes
   under the chin are the parser's call and not guesses from grey levels
   (those took a black dress and a curtain's folds for hair); the person mask
   separates people from the background; outside people, one scene cue tells
   sky (bright, smooth, reaching the top edge) from the rest. Regions are
   found at the parser's resolution and used at the working resolution.
2. **Palettes.** Skin within human ranges (shaped by the requested gender and
   age), lips a little redder, hair from its grey level (dark: near black;
   mid: brown; light: blond), near-neutral eyes; clothes, hat, backdrop and
   sky drawn per candidate from palettes of plausible dyes, walls and blues, so
   candidates differ where a person would accept either answer and agree on
   skin; each person of a group wears a dye of their own. A scene (no face
   large enough to make a portrait) is coloured by a network trained on
   colour photos (services/vision/scene_colour.py), which says what it shows
   (sky, foliage, water, stone) and how sure it is: its colour counts as much
   as it earned at that sureness on validation photos (SCENE_WEIGHTS), and
   the candidate's faint backdrop takes the rest. A portrait's backdrop stays
   a palette's, different per candidate: on the held-out portraits the
   network's walls and beaches were no nearer the truth, and candidates
   agreed. A person whose face
   was not found gets a warm low chroma, as a hand-tinted print: guessing
   clothes there paints faces blue; so does what beside the found heads, at
   their height, is not theirs (a head the analyser missed, a raised arm).
   Chroma fades towards black and white, as real colours do, and clothes dyes
   fade sooner near the print's own white (a shirt that is near white in grey
   was white, not pink).
3. **Spreading** (Levin, Lischinski & Weiss 2004, "Colorization using
   optimization"): the palette is imposed on the confident interior of each
   region (eroded), and every other pixel takes the weighted mean of its
   neighbours' colour, weighted by how alike their lightness is, one sparse
   solve at the working resolution. Colour stops at lightness edges and
   flows along smooth areas. The scene network's colour is not imposed but
   pulls (a soft constraint): it changes from block to block, and each
   stretch of alike lightness takes its mean instead of its patches.
4. **Full resolution**: a guided filter fitted at working resolution from the
   photo's lightness to the solved chroma, applied to the full-resolution
   lightness (compose.chroma_onto), which is kept exactly.

The requested hair colour is applied last, at full resolution, to the parsed hair
alone (`photo_hair`, `tint_hair`), so no pixel outside the hair and the person
changes with it; hair too dark or too pale to show the colour is moved, in
order, to where sRGB has it (red hair is never near-black).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from revive.v1 import common_pb2

from services.generator.planes import LAB_SCALE, lab_to_rgb, rgb_to_lab
from services.vision import parsing

#: Long side of the grid the colour is solved on (the sparse solve grows with its area).
SOLVE_SIDE = 256
#: Working-resolution pixels the regions are eroded by before they are imposed.
ERODE = 1

# Region codes of the working-resolution map. PERSON: a person whose face was not found (no parse).
UNKNOWN, BACKGROUND, SKY, SKIN, LIPS, EYES, BROWS, HAIR, CLOTH, HAT, NEUTRAL, PERSON = range(12)

#: Face-parsing labels -> region.
PARSED = {
    parsing.Label.SKIN: SKIN, parsing.Label.NOSE: SKIN, parsing.Label.NECK: SKIN, parsing.Label.LEFT_EAR: SKIN,
    parsing.Label.RIGHT_EAR: SKIN, parsing.Label.UPPER_LIP: LIPS, parsing.Label.LOWER_LIP: LIPS,
    parsing.Label.LEFT_EYE: EYES, parsing.Label.RIGHT_EYE: EYES, parsing.Label.LEFT_BROW: BROWS,
    parsing.Label.RIGHT_BROW: BROWS, parsing.Label.HAIR: HAIR, parsing.Label.CLOTH: CLOTH, parsing.Label.HAT: HAT,
    parsing.Label.GLASSES: NEUTRAL, parsing.Label.MOUTH: NEUTRAL,  # glasses: freed after split_body
}

#: Bare skin beyond the head comes in pieces at least this share of the parsed skin's area: a hand's.
MIN_BARE_SHARE = 0.1
#: Percentile of the face's skin lightness above which a limb is a sleeve, not a bare arm.
LIT_SKIN = 90
#: CIELAB (a, b) of skin: the range a candidate draws its skin from, and how far candidates may differ. The
#: parsed skin of the training photos' ten faces has a median of (16.9, 30.6); of (13, 17), (15, 22) and
#: (17, 26) the tuning portraits came closest to their truth at (17, 26) (77.9, 77.3, 76.9 ab summed), and
#: their colourfulness went 0.56x -> 0.69x the truth's: the paler skin was a grey cast over every face.
SKIN_AB = (17.0, 26.0)
SKIN_SPREAD = (1.5, 2.0)
LIPS_AB = (24.0, 14.0)
EYES_AB = (1.0, 3.0)
#: Share of a brow's colour that is its hair's; the rest is the skin's under it.
BROW_HAIR = 0.5
#: Hair from its mean lightness (L 0..100): (upper L, a, b).
HAIR_BY_LIGHTNESS = ((22.0, 1.5, 3.0), (38.0, 5.0, 10.0), (58.0, 8.0, 17.0), (101.0, 4.0, 20.0))
#: Dyes of clothes and hats, and walls and backdrops of portraits: each candidate draws one of each.
CLOTHES = ((2.0, -22.0), (-16.0, 6.0), (30.0, 12.0), (9.0, 20.0), (1.0, 1.0), (4.0, 14.0), (-8.0, -12.0),
           (20.0, -8.0), (-4.0, 18.0))
#: Backdrops stay warm, grey, rose or sage: where the person mask misses a face (close-ups) the backdrop lands
#: on skin, and a cool tint there is the worst mistake a candidate can make. In an order where neighbours
#: differ by 19 or more (the last and the first by 13), so consecutive candidates stand on clearly different
#: walls.
BACKDROPS = ((9.0, 19.0), (-9.0, 5.0), (10.0, 3.0), (-10.0, 14.0), (2.0, -2.0), (-4.0, 17.0))
#: Skies: a clear blue, a paler hazy one, a deeper one. Each candidate draws one, so candidates differ in the sky
#: as in the walls, by 9 ab or more between neighbours, all of them blue.
SKIES = ((-4.0, -20.0), (-1.0, -11.0), (-8.0, -29.0))
#: A person without a found face: a warm, low chroma, as a hand-tinted print (a blue face is worse than none).
PERSON_AB = (6.0, 11.0)
#: Backdrops of scenes (no portrait) are kept fainter: one tint over a whole street looks painted.
SCENE_BACKDROP = 0.5
#: How hard the scene network's colour pulls each pixel against its neighbours in the solve (levin): it is averaged
#: over about 1 / sqrt(SCENE_PULL) solve pixels of alike lightness. On the tuning photos (bench/colour_bench.py
#: --photos tuning) 0.05, 0.01 and 0.002 went 33.9, 33.8, 33.7 ab from the scenes' truth (34.0 imposed pixel by
#: pixel), and only at 0.002 were the cup and the storm's sky free of patches.
SCENE_PULL = 0.002
#: How much the scene network's colour counts, by its spread (ab units): (spread, weight) points, read off
#: validation photos by the export (training/colour_prior/calibrate.py; models/colour/manifest.json).
SCENE_WEIGHTS = ((6.0, 1.0), (10.0, 0.72), (14.0, 0.72), (18.0, 0.72), (22.0, 0.72), (26.0, 0.7), (30.0, 0.5))
#: Lightness (L) over which colour fades to grey: (starts, gone). Clothes that are near white in grey were
#: white (a boy's pale shirt is not pink); walls, skin and hair keep their colour to L 88.
DYE_FADE = (65.0, 90.0)
FADE = (88.0, 100.0)
#: Where a photo's whites may lie (L): DYE_FADE is for a print whose white is 100, and scales to its own.
WHITE_RANGE = (70.0, 100.0)
#: A person's clothes in two garments, a pale one over or under a dark one (a white shirt under a vest or a
#: jacket, the usual dress of old portraits): the two lightness classes (Otsu) must lie this far apart (L), the
#: pale one this light against the print's white, and hold this share of the clothes at least.
GARMENT_GAP = 25.0
PALE_GARMENT = 0.72
PALE_SHARE = 0.1
#: People of a group take clothes dyes this many places apart in CLOTHES.
PERSON_DYE_STEP = 3
#: Heads are parsed for colour in a square this many times the face's (parsing.framing): 1.5 holds long hair and
#: the clothes below the chin whole on real portraits, where the face's own square cuts hair off in a straight
#: line and leaves the clothes to guesses from grey levels; at 2 the face is too small for the parser and its
#: hair turns to skin. The regions are solved at SOLVE_SIDE, far coarser than either parse.
HEAD_ZOOM = 1.5
#: Long hair is followed below the parse up to this many face heights, through texture rougher than this
#: percentile of the parsed hair's (colourize.long_hair).
LONG_HAIR = 1.5
LONG_HAIR_TEXTURE = 25
#: Requested hair colours as CIELAB (a, b).
HAIR_COLOURS = {
    common_pb2.BLACK: (1.0, 2.0), common_pb2.BROWN: (10.0, 20.0), common_pb2.BLOND: (5.0, 30.0),
    common_pb2.RED: (36.0, 40.0), common_pb2.GREY: (0.0, 2.0),
}


@dataclass(frozen=True)
class Palette:
    """One candidate's colours, CIELAB (a, b) per region."""

    skin: tuple[float, float]
    lips: tuple[float, float]
    hat: tuple[float, float]
    backdrop: tuple[float, float]
    sky: tuple[float, float]
    seed: int

    def cloth(self, person: int) -> tuple[float, float]:
        """The dye of the clothes of the `person`-th face found: people of a group dress differently."""
        return CLOTHES[(self.seed + PERSON_DYE_STEP * person) % len(CLOTHES)]

    @classmethod
    def draw(cls, seed: int, gender: int, age: float | None) -> Palette:
        """Skin near the human mean, warmer for women and children, a little paler with age; the rest free."""
        rng = np.random.default_rng([seed, 1])
        a, b = SKIN_AB
        if gender == common_pb2.FEMALE:
            a += 1.5
        elif gender == common_pb2.MALE:
            b += 1.0
        if age is not None:
            a += 2.0 if age < 13 else (-1.0 if age > 60 else 0.0)
            b += -1.0 if age < 13 else (1.0 if age > 60 else 0.0)
        skin = (a + rng.uniform(-1, 1) * SKIN_SPREAD[0], b + rng.uniform(-1, 1) * SKIN_SPREAD[1])
        lips = (LIPS_AB[0] + (3.0 if gender == common_pb2.FEMALE else 0.0) + rng.uniform(-2, 2), LIPS_AB[1])
        # The gateway asks for consecutive seeds and the palettes are ordered so that neighbours differ a lot:
        # consecutive candidates never share a dye, a wall or a sky.
        return cls(skin, lips, CLOTHES[(seed + 4) % len(CLOTHES)], BACKDROPS[seed % len(BACKDROPS)],
                   SKIES[seed % len(SKIES)], seed)


def solve_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, SOLVE_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def region_map(lightness: np.ndarray, labels: list[np.ndarray], person: np.ndarray | None,
               portrait: bool, limbs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(h x w region codes, h x w owners) at the solve size, from the faces' label maps (photo size), the
    person probability (any size), the photo's lightness (solve size, L 0..100) and where the found people's
    limbs are (solve size, services/vision/pose.py). Owners say whose clothes a pixel is: the index of a face in
    `labels`."""
    size = lightness.shape
    regions = np.full(size, UNKNOWN, np.uint8)
    people = np.zeros(size, bool)
    if person is not None:
        people = cv2.resize(person.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.5
    regions[~people] = BACKGROUND
    texture = local_deviation(lightness)  # one texture measure for the sky, the body and the hair
    smalls = [cv2.resize(label_map, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) for label_map in labels]
    faces = [np.argwhere(np.isin(small, (parsing.Label.SKIN, parsing.Label.NOSE))) for small in smalls]
    centres = [face.mean(axis=0) if len(face) else np.array([np.inf, np.inf]) for face in faces]
    # Sky only where people are not the subject, or above every head: a bright studio wall is no sky, and it
    # runs down beside the sitter where a sky ends at a horizon.
    highest = min((float(centre[0]) for centre in centres), default=np.inf)
    if not portrait or np.isfinite(highest):
        regions[sky(lightness, texture, people, highest if portrait else None)] = SKY
    owners = np.zeros(size, np.int32)
    for index, small in enumerate(smalls):
        for label, region in PARSED.items():
            regions[small == label] = region
        # The parse knows the head best: what it calls background there is not the person's clothes (nor sky
        # turned wall around the head).
        regions[(small == parsing.Label.BACKGROUND) & ~people & (regions != SKY)] = BACKGROUND
        owners[small == parsing.Label.CLOTH] = index
    parsed_cloth, parsed_skin = regions == CLOTH, regions == SKIN
    # Clothes hang below the chins; beside the parsed heads, at head height, is mostly another head the analyser
    # missed (a profile, a face turned down, a blond head) or a raised arm.
    chins = [float(np.percentile(face[:, 0], 95)) for face in faces if len(face)]
    head_high = np.arange(size[0])[:, None] <= max(chins, default=-1.0)
    split_body(regions, lightness, texture, people, head_high,
               np.zeros(size, bool) if limbs is None else limbs & ~parsed_skin)
    heights = [float(np.percentile(face[:, 0], 95) - np.percentile(face[:, 0], 5)) for face in faces if len(face)]
    long_hair(regions, lightness, texture, people & ~parsed_cloth, head_high,
              round(LONG_HAIR * max(heights, default=0.0)))
    # What the split called clothes there, dyed, was green and blue faces on group photos: it gets a person's
    # warm, low chroma instead.
    regions[head_high & (regions == CLOTH) & ~parsed_cloth] = PERSON
    # Spectacles are seen through: the parse calls the eyes and the skin behind the lenses glasses, and imposed
    # grey they were grey goggles on a warm face. What is as light as the face's skin is left free to take the
    # colour around it; dark lenses (sunglasses), rims and pupils stay grey. The face's skin, not the bare skin
    # found beyond it: a lit cardigan taken for bare arms made the skin seem lighter than the shaded sockets
    # behind a real boy's lenses, and they stayed grey.
    skin = lightness[parsed_skin]
    if skin.size >= 20:
        seen_through = distance_to(skin, lightness) < 2.5
        for small in smalls:
            regions[(small == parsing.Label.GLASSES) & seen_through] = UNKNOWN
    if len(centres) > 1:  # the clothes beyond the parses: the person whose face is nearest across
        columns = np.arange(size[1], dtype=np.float64)
        nearest = np.argmin(np.abs(columns[None, :] - np.asarray([centre[1] for centre in centres])[:, None]), axis=0)
        beyond = (regions == CLOTH) & ~parsed_cloth
        owners[beyond] = np.broadcast_to(nearest, size)[beyond]
    pale_garments(regions, owners, lightness)
    return regions, owners


def pale_garments(regions: np.ndarray, owners: np.ndarray, lightness: np.ndarray) -> None:
    """Each person's pale garment, where their clothes are two (a white shirt under a dark vest), becomes
    NEUTRAL: dyed with the dark one, its shaded folds and sleeves, too dark for DYE_FADE to spare, came out pink
    on a real cracked portrait. Classes are taken on the lightness smoothed over 5x5, so a knit's light and dark
    stitches are one garment."""
    smooth = cv2.blur(lightness, (5, 5))
    white = print_white(lightness)
    for person in np.unique(owners[regions == CLOTH]).tolist():
        clothes = (regions == CLOTH) & (owners == person)
        values = smooth[clothes]
        if values.size < 40:
            continue
        levels = np.clip(values * (255.0 / 100.0), 0, 255).astype(np.uint8).reshape(-1, 1)
        threshold = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[0] * (100.0 / 255.0)
        pale = values > threshold
        if not PALE_SHARE <= pale.mean() <= 1 - PALE_SHARE:
            continue
        if values[pale].mean() - values[~pale].mean() < GARMENT_GAP or values[pale].mean() < PALE_GARMENT * white:
            continue
        regions[clothes & (smooth > threshold)] = NEUTRAL


def sky(lightness: np.ndarray, texture: np.ndarray, people: np.ndarray, above: float | None) -> np.ndarray:
    """Bright, smooth ground that reaches the top edge and covers a twentieth of the photo; with `above` (a
    row), only such ground lying (nine tenths of it) above that row."""
    smooth_bright = (lightness > 62) & (texture < 2.5) & ~people
    _, components = cv2.connectedComponents(smooth_bright.astype(np.uint8))
    found = np.zeros(lightness.shape, bool)
    for label in np.unique(components[0][smooth_bright[0]]).tolist():
        component = (components == label) & smooth_bright
        if component.mean() <= 0.05:
            continue
        if above is not None and (np.nonzero(component)[0] < above).mean() < 0.9:
            continue
        found |= component
    return found


def local_deviation(lightness: np.ndarray) -> np.ndarray:
    """Standard deviation of lightness over 5x5 windows: texture (knits, foliage) against smooth skin."""
    return np.sqrt(np.maximum(cv2.blur(lightness ** 2, (5, 5)) - cv2.blur(lightness, (5, 5)) ** 2, 0))


def distance_to(values: np.ndarray, lightness: np.ndarray) -> np.ndarray:
    """How far each pixel's lightness lies from the distribution of `values`, in its robust standard deviations
    (median and MAD, floored at 3 L): a region's cracks, highlights and shadows are outliers that would
    otherwise widen it until a grey knit vest passes for the face's skin (a real cracked scan)."""
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    return np.abs(lightness - centre) / max(spread, 3.0)


def split_body(regions: np.ndarray, lightness: np.ndarray, texture: np.ndarray, people: np.ndarray,
               head_high: np.ndarray, limbs: np.ndarray) -> None:
    """The rest of each person, beyond the parsed heads: bare arms, hands and chests look like the face's skin
    in grey, clothes mostly do not. Each pixel goes to whichever of the two lightness distributions (the
    parsed skin's and clothes') it is nearer to, in standard deviations; at head height (`head_high`, rows) and
    nearer the parsed hair's, it is hair; clearly neither stays free for the solve to fill from its neighbours.

    On the limbs (`limbs`: arms, hands and legs the pose model found), smooth ground of the face's grey is bare
    skin whatever the clothes look like, even where the parse called it clothes: a low neckline puts bare skin
    into the parsed clothes, whose tones then claimed the bare arms for a dye (teal and pink arms)."""
    rest = (regions == UNKNOWN) & people
    skin = lightness[regions == SKIN]
    if skin.size < 20:
        regions[rest] = PERSON
        return
    cloth = lightness[regions == CLOTH]
    smooth = texture <= max(1.5 * float(np.median(texture[regions == SKIN])), 2.0)
    to_skin = np.where(smooth, distance_to(skin, lightness), np.inf)
    to_cloth = distance_to(cloth, lightness) if cloth.size >= 20 else np.full(lightness.shape, 2.0, np.float32)
    hair = lightness[regions == HAIR]
    to_hair = distance_to(hair, lightness) if hair.size >= 20 else np.full(lightness.shape, np.inf, np.float32)
    # Bare skin is whole arms, hands and chests; single pixels of a knit that pass for it are the knit's, and
    # so are patches smaller than a hand (a knit's lit side: pink blotches over a real scan's vest).
    bare = cv2.morphologyEx((rest & (to_skin < 1.5) & (to_skin < to_cloth)).astype(np.uint8), cv2.MORPH_OPEN,
                            np.ones((3, 3), np.uint8))
    _, components, stats, _ = cv2.connectedComponentsWithStats(bare, connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= MIN_BARE_SHARE * skin.size
    large[0] = False
    regions[large[components]] = SKIN
    # A limb no lighter than the lit side of the face: a white sleeve can have the face's grey too, but is lighter
    # than nearly all of it.
    lit = float(np.percentile(skin, LIT_SKIN))
    regions[limbs & np.isin(regions, (UNKNOWN, CLOTH)) & smooth & (to_skin < 1.5) & (lightness <= lit)] = SKIN
    # At head height (`head_high`, rows), hair falls beyond the parse, and so does the hair of a head the analyser
    # missed: left free, it took the colour of the sofa beside it (green hair), and split as clothes a dye (purple
    # hair). Lower down, a dark shirt has the hair's tones as often as long hair does.
    regions[rest & head_high & (regions == UNKNOWN) & (to_hair < 2.0) & (to_hair < to_cloth)] = HAIR
    regions[rest & (regions == UNKNOWN) & ((to_cloth < 2.0) | (to_skin > 2.5)) & (to_cloth <= to_hair)] = CLOTH


def long_hair(regions: np.ndarray, lightness: np.ndarray, texture: np.ndarray, rest: np.ndarray,
              head_high: np.ndarray, reach: int) -> None:
    """Hair that falls below the chins (`head_high`: the rows above them), beyond the parse's square: what of the
    people (`rest`: outside the parsed clothes) was split as clothes, or left free, and goes on from the parsed
    hair with its tones and its strands' texture, up to `reach` pixels (grown a pixel at a time).

    Split as clothes it took a dye: purple and blue locks down a woman's back on a tuning group photo. A dark
    shirt has the hair's tones as often as long hair does, so tone alone is not enough: the way must run
    from the hair without a break, through texture at least as rough as most of the parsed hair's (a smooth
    shirt stops it)."""
    hair = regions == HAIR
    if hair.sum() < 20 or reach <= 0:
        return
    to_hair = distance_to(lightness[hair], lightness)
    # Rough over an area, as hair is, not along a line, as every edge between two tones is.
    rough = cv2.morphologyEx((texture >= float(np.percentile(texture[hair], LONG_HAIR_TEXTURE))).astype(np.uint8),
                             cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    way = (rest & ~head_high & np.isin(regions, (CLOTH, UNKNOWN)) & (to_hair < 1.5) & rough).astype(np.uint8)
    grown = hair.astype(np.uint8)
    step = np.ones((3, 3), np.uint8)
    for _ in range(reach):
        wider = cv2.dilate(grown, step) & (way | grown)
        if np.array_equal(wider, grown):
            break
        grown = wider
    regions[(grown > 0) & (way > 0)] = HAIR


def hair_ab(lightness: np.ndarray, hair: np.ndarray) -> tuple[float, float]:
    """Hair colour from its grey level: dark hair near black, mid brown, light blond."""
    level = float(np.median(lightness[hair])) if hair.any() else 30.0
    for upper, a, b in HAIR_BY_LIGHTNESS:
        if level < upper:
            return a, b
    return HAIR_BY_LIGHTNESS[-1][1:]


def scene_weight(spread: np.ndarray) -> np.ndarray:
    """0..1 per pixel: how much the scene network's colour counts where its spread (ab units) is this. The
    weights were earned against grey on validation photos; the rest goes to the candidate's backdrop, which
    outside portraits is a faint tint."""
    spreads, weights = zip(*SCENE_WEIGHTS)
    return np.interp(spread, spreads, weights).astype(np.float32)


def print_white(lightness: np.ndarray) -> float:
    """The lightness of the photo's whites: an old print's paper and white shirts scan at L 85-90, not 100, and a
    shirt as light as the print allows was white, not pink (skin keeps its own scale: in a low-key photo the
    brightest thing may be a face). The brightest half-percent, kept within WHITE_RANGE."""
    return float(np.clip(np.percentile(lightness, 99.5), *WHITE_RANGE))


def imposed_colour(regions: np.ndarray, owners: np.ndarray, lightness: np.ndarray, palette: Palette,
                   portrait: bool = True, scene: tuple[np.ndarray, np.ndarray] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed mask, h x w x 2 ab, h x w pull): the palette on the eroded interior of every region, chroma faded
    towards black and white; clothes in their owner's dye. Outside people, the scene network's colour
    (`scene`: ab and spread at the solve size), as much as it earned at that spread, is not fixed but pulls
    (SCENE_PULL): the network's colour changes from block to block, and imposed pixel by pixel it painted blue
    and green patches over one cup and petals of three colours on one flower; pulled, each stretch of alike
    lightness takes the mean of what the network says over it."""
    hair = hair_ab(lightness, regions == HAIR)
    backdrop = palette.backdrop if portrait else tuple(SCENE_BACKDROP * value for value in palette.backdrop)
    # A brow is a few solve pixels of hairs over skin: half of each. The hair's colour alone, faded, was grey
    # between warm skin and read as blue brows.
    brows = tuple(BROW_HAIR * h + (1 - BROW_HAIR) * k for h, k in zip(hair, palette.skin))
    colours = {BACKGROUND: backdrop, SKY: palette.sky, SKIN: palette.skin, LIPS: palette.lips, EYES: EYES_AB,
               BROWS: brows, HAIR: hair, HAT: palette.hat,
               NEUTRAL: (0.0, 0.0), PERSON: PERSON_AB}
    fixed = np.zeros(regions.shape, bool)
    ab = np.zeros((*regions.shape, 2), np.float32)
    kernel = np.ones((2 * ERODE + 1, 2 * ERODE + 1), np.uint8)
    for region in (*colours, CLOTH):
        inside = regions == region
        if region in (LIPS, EYES, BROWS):  # small: their few pixels are all needed
            core = inside
        else:
            core = cv2.erode(inside.astype(np.uint8), kernel).astype(bool)
        fixed |= core
        if region == CLOTH:
            for person in np.unique(owners[core]).tolist():
                ab[core & (owners == person)] = palette.cloth(person)
        else:
            ab[core] = colours[region]
    # Real colours fade to grey near black and white; dyes sooner near white, measured against the print's own.
    dyed = np.isin(regions, (CLOTH, HAT))
    start, gone = (np.where(dyed, dye, other) for dye, other in zip(DYE_FADE, FADE))
    towards_white = np.where(dyed, lightness * (100.0 / print_white(lightness)), lightness)
    fade = np.clip(lightness / 25.0, 0, 1) * np.clip((gone - towards_white) / (gone - start), 0, 1)
    ab *= fade[..., None]
    if scene is not None:  # the network's colour already fades with lightness as the photos it learned from do
        scene_ab, spread = scene
        weight = scene_weight(spread)[..., None]
        outside = np.isin(regions, (BACKGROUND, SKY))
        ab[outside] = (weight * scene_ab + (1 - weight) * ab)[outside]
        fixed &= ~outside
        return fixed, ab, np.where(outside, SCENE_PULL, 0.0).astype(np.float32)
    return fixed, ab, np.zeros(regions.shape, np.float32)


def levin(lightness: np.ndarray, fixed: np.ndarray, values: np.ndarray, pull: np.ndarray | None = None) -> np.ndarray:
    """h x w x C: `values` where `fixed`, elsewhere each pixel the lightness-affinity-weighted mean of its
    8 neighbours (Levin et al. 2004), solved as one sparse linear system. `pull` (h x w, >= 0) adds to a free
    pixel's neighbours its own value in `values` with that weight (neighbours' weights sum to 1): a soft
    constraint, so a noisy colour is averaged over the stretch of alike lightness it lies in (over about
    1 / sqrt(pull) pixels) and still stops at edges."""
    height, width = lightness.shape
    count = height * width
    index = np.arange(count).reshape(height, width)
    luma = lightness.astype(np.float64) / 100.0
    mean = cv2.blur(luma, (3, 3))
    # Levin's window variance sets how alike neighbours must be; capped (sigma 0.05 of the range) so a strong
    # edge, whose own window variance is large, still stops colour instead of leaking it.
    variance = np.clip((cv2.blur(luma ** 2, (3, 3)) - mean ** 2) * 0.6, 2e-5, 0.0025)
    rows, cols, weights = [], [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            y0, y1 = max(0, -dy), height - max(0, dy)
            x0, x1 = max(0, -dx), width - max(0, dx)
            here = index[y0:y1, x0:x1]
            there = index[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            difference = luma[y0:y1, x0:x1] - luma[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            rows.append(here.ravel())
            cols.append(there.ravel())
            weights.append(np.exp(-difference.ravel() ** 2 / (2 * variance[y0:y1, x0:x1].ravel())))
    rows, cols, weights = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    free = ~fixed.ravel()
    # Rows of free pixels: x_r - sum_s w_rs x_s = 0 (weights normalised per row); fixed pixels: x_r = value.
    totals = np.bincount(rows, weights, count)
    keep = free[rows]
    affinity = scipy.sparse.csr_matrix((-weights[keep] / totals[rows[keep]], (rows[keep], cols[keep])),
                                       shape=(count, count))
    pulled = np.zeros(count) if pull is None else np.where(free, pull.ravel().astype(np.float64), 0.0)
    system = (scipy.sparse.diags(1.0 + pulled, format="csr") + affinity).tocsc()
    rhs = np.where(fixed.ravel()[:, None], values.reshape(count, -1), pulled[:, None] * values.reshape(count, -1))
    if not fixed.any() and not pulled.any():
        return np.zeros_like(values)
    solution = scipy.sparse.linalg.spsolve(system, rhs)
    return solution.reshape(values.shape).astype(np.float32)


def photo_hair(close: list[np.ndarray], wide: list[np.ndarray], person: np.ndarray) -> np.ndarray:
    """H x W bool: the hair a requested colour goes on. Each face's parse (`close`) ends at its square, a
    straight-edged block of red over long hair; the parse of a square HEAD_ZOOM times as wide (`wide`, same
    faces) sees the whole head and tells the hair on the shoulders from the dress under it, at a lower
    resolution. So the close parse's hair, and the wide one's where the close parse saw nothing of the person
    (beyond its square, or background: at the top of its square it leaves holes in a high hairdo), there only on
    the person mask (`person`, photo size): a colour asked for the hair lands on the person and nowhere else."""
    hair = np.zeros(person.shape, bool)
    for near, far in zip(close, wide, strict=True):
        unseen = (near == parsing.OUTSIDE) | (near == parsing.Label.BACKGROUND)
        hair |= (near == parsing.Label.HAIR) | (unseen & (far == parsing.Label.HAIR) & (person >= 0.5))
    return hair


@functools.cache
def shown_lightness(colour: int) -> tuple[float, float]:
    """The range of L (0..100) over which sRGB shows the requested hair colour's full chroma: outside it (red
    below L 27 and above 73) the colour does not exist, only a darker or paler, greyer one."""
    a, b = HAIR_COLOURS[colour]
    levels = np.arange(0.0, 100.5, 0.5, dtype=np.float32)
    lab = np.stack([levels, np.full_like(levels, a), np.full_like(levels, b)], axis=-1)[None] / LAB_SCALE
    back = rgb_to_lab(lab_to_rgb(lab))[0] * LAB_SCALE
    shown = levels[(np.abs(back[:, 0] - levels) <= 1.0) & (np.hypot(back[:, 1] - a, back[:, 2] - b) <= 2.0)]
    return (float(shown.min()), float(shown.max())) if shown.size else (50.0, 50.0)


def hair_tones(lightness: np.ndarray, colour: int) -> np.ndarray:
    """The hair's lightness (0..1) moved, as one shift and if need be one contrast cut, so that its tones (5th to
    95th percentile) lie where the colour exists: red hair is never near-black, nor white. Hair already inside
    stays as it is; the order of its strands never changes."""
    low, high = (value / LAB_SCALE[0] for value in shown_lightness(colour))
    darkest, lightest = np.percentile(lightness, (5, 95))
    scale = min(1.0, (high - low) / max(lightest - darkest, 1e-6))
    start = float(np.clip(darkest, low, high - (lightest - darkest) * scale))
    return start + (lightness - darkest) * scale


def tint_hair(rgb: np.ndarray, hair: np.ndarray, colour: int) -> np.ndarray:
    """The requested colour on the parsed hair (HxW bool, photo size) and on no other pixel: chroma moves
    towards the colour's, feathered inside the hair's edge, and the texture stays.

    Hair whose tones the colour cannot show is moved to where it can (hair_tones); a strand still out of
    gamut is pulled in rather than clipped, which would change its lightness."""
    if colour not in HAIR_COLOURS or not hair.any():
        return rgb
    rows, cols = np.nonzero(hair)
    box = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
    inside = hair[box].astype(np.float32)
    weight = cv2.GaussianBlur(inside, (0, 0), 1.5) * inside
    lab = rgb_to_lab(rgb[box])
    toned = hair_tones(lab[..., 0][hair[box]], colour)
    moved = lab[..., 0].copy()
    moved[hair[box]] = toned
    lab[..., 0] += weight * (moved - lab[..., 0])
    target = np.asarray(HAIR_COLOURS[colour], np.float32) / LAB_SCALE[1:]
    chroma = lab[..., 1:] + weight[..., None] * (target - lab[..., 1:])
    for _ in range(6):
        lab[..., 1:] = chroma
        drift = np.abs(rgb_to_lab(lab_to_rgb(lab))[..., 0] - lab[..., 0]) * LAB_SCALE[0]
        if not (drift > 1.0).any():
            break
        chroma = np.where((drift > 1.0)[..., None], chroma * 0.8, chroma)
    out = rgb.copy()
    out[box] = np.where(hair[box][..., None], lab_to_rgb(lab), rgb[box])
    return out


def colour_planes(lightness: np.ndarray, regions: np.ndarray, owners: np.ndarray, portrait: bool, palette: Palette,
                  scene: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """h x w x 2 CIELAB (a, b) at the solve size of `lightness` (L 0..100), from its region_map."""
    fixed, values, pull = imposed_colour(regions, owners, lightness, palette, portrait, scene)
    if pull.any():
        pulled = pull > 0
        values = np.where(pulled[..., None], pulled_coarsely(lightness, fixed, values, pull), values)
        fixed = fixed | pulled
    return levin(lightness, fixed, values)


def pulled_coarsely(lightness: np.ndarray, fixed: np.ndarray, values: np.ndarray, pull: np.ndarray) -> np.ndarray:
    """h x w x 2: the solve with its pulled pixels, on a grid half as fine. Pulled pixels are all coupled, and the
    sparse factorisation of a whole 256-pixel grid costs 0.4 s a candidate, against 0.05 s at half the side; the
    pulled colour is an average over a tenth of the photo, which the coarser grid holds as well."""
    height, width = lightness.shape
    size = (max(1, width // 2), max(1, height // 2))
    solved = levin(cv2.resize(lightness, size, interpolation=cv2.INTER_AREA),
                   cv2.resize(fixed.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool),
                   cv2.resize(values, size, interpolation=cv2.INTER_AREA),
                   cv2.resize(pull, size, interpolation=cv2.INTER_NEAREST) * 4.0)  # the same reach in the photo
    return cv2.resize(solved, (width, height), interpolation=cv2.INTER_LINEAR)
