"""Colourizing a black-and-white photo by regions: hair colour only on the hair, candidates that differ
where it is plausible and agree on skin, lightness kept."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from revive.v1 import common_pb2

from services.generator import colourize
from services.generator.engine import RestorationInput
from services.generator.planes import rgb_to_lab
from services.vision import parsing
from services.vision.person import whole
from tests.generator.test_learned import FACES, engine  # noqa: F401 (the shared engine fixture)


@pytest.fixture(scope="module")
def grey_portrait() -> np.ndarray:
    photo = cv2.cvtColor(cv2.imread(str(FACES / "sample1.jpg")), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (480, 320), interpolation=cv2.INTER_AREA)
    return np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def colourized(engine, grey: np.ndarray, seed: int, **options: object) -> np.ndarray:  # noqa: F811
    request = RestorationInput(grey, {}, common_pb2.DamageReport(is_grayscale=True),
                               common_pb2.RestoreOptions(colorize=common_pb2.COLORIZE_ON, **options))
    return engine.generate(request, seed)


def ab(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_lab(rgb)[..., 1:] * 110


def test_the_hair_colour_changes_the_hair_and_nothing_beyond_the_person(engine, grey_portrait):  # noqa: F811
    # The faces and the person as the engine finds them (a group's weaker faces; the whole photo and each face).
    request = RestorationInput(grey_portrait, {}, common_pb2.DamageReport(is_grayscale=True), common_pb2.RestoreOptions())
    labels = engine.parser.parse_faces(grey_portrait, engine.colour_faces(request))
    hair = np.any([label == parsing.Label.HAIR for label in labels], axis=0)
    assert hair.mean() > 0.02
    person = whole(engine.people(request), grey_portrait.shape[:2]) >= 0.5
    black = colourized(engine, grey_portrait, 5, hair_color=common_pb2.BLACK)
    red = colourized(engine, grey_portrait, 5, hair_color=common_pb2.RED)
    changed = np.any(black != red, axis=2)
    assert not changed[~hair & ~person].any()  # the hair beyond the parse's square is the person's
    assert (ab(red)[..., 0][hair] - ab(black)[..., 0][hair]).mean() > 15  # much redder where it is hair


def test_candidates_differ_around_people_and_agree_on_skin(engine, grey_portrait):  # noqa: F811
    labels = engine.parser.parse_faces(grey_portrait, engine.analyzer.analyze(grey_portrait))
    skin = np.any([parsing.region_mask(label, parsing.SKIN) for label in labels], axis=0)
    head = np.any([parsing.region_mask(label, parsing.HEAD) for label in labels], axis=0)
    first, second = colourized(engine, grey_portrait, 1), colourized(engine, grey_portrait, 2)
    difference = np.linalg.norm(ab(first) - ab(second), axis=2)
    assert difference[~head].mean() > 5.0
    assert difference[skin].mean() < 5.0
    for image in (first, second):  # the photo's lightness, kept
        assert np.median(np.abs(rgb_to_lab(image)[..., 0] - rgb_to_lab(grey_portrait)[..., 0]) * 100) < 0.5


def test_the_solve_spreads_imposed_colour_along_smooth_lightness_and_stops_at_edges():
    lightness = np.full((40, 60), 30.0, np.float32)
    lightness[:, 30:] = 80.0  # one edge down the middle
    fixed = np.zeros((40, 60), bool)
    fixed[20, 5] = fixed[20, 55] = True
    values = np.zeros((40, 60, 2), np.float32)
    values[20, 5] = (20.0, 0.0)
    values[20, 55] = (-20.0, 0.0)
    solved = colourize.levin(lightness, fixed, values)
    assert solved[:, :28, 0].min() > 15 and solved[:, 32:, 0].max() < -15


def test_people_of_a_group_wear_different_dyes():
    """Two parsed people side by side, their clothes continuing beyond the parses: each keeps one dye of
    their own, and the two differ."""
    lightness = np.full((60, 80), 50.0, np.float32)
    labels = []
    for left in (5, 45):
        label = np.zeros((60, 80), np.uint8)
        label[5:20, left:left + 30] = parsing.Label.SKIN
        label[20:35, left:left + 30] = parsing.Label.CLOTH
        labels.append(label)
    person = np.zeros((60, 80), np.float32)
    person[5:, 5:35] = person[5:, 45:75] = 1.0
    palette = colourize.Palette.draw(1, common_pb2.GENDER_UNSPECIFIED, None)
    regions, owners = colourize.region_map(lightness, labels, person, portrait=True)
    fixed, values, _ = colourize.imposed_colour(regions, owners, lightness, palette)
    left, right = values[40:55, 10:30].reshape(-1, 2), values[40:55, 50:70].reshape(-1, 2)
    assert fixed[40:55, 10:30].all() and fixed[40:55, 50:70].all()  # the clothes below the parses are dyed
    assert np.ptp(left, axis=0).max() == 0 and np.ptp(right, axis=0).max() == 0
    assert np.linalg.norm(left[0] - right[0]) > 10


def test_a_near_white_dye_fades_to_white():
    """A shirt near white in grey stays near white: dyes fade from L 65, skin keeps its colour to L 88."""
    lightness = np.full((20, 40), 84.0, np.float32)  # a pale shirt, as pale as light skin
    regions = np.full((20, 40), colourize.CLOTH, np.uint8)
    regions[:, 20:] = colourize.SKIN
    palette = colourize.Palette.draw(2, common_pb2.GENDER_UNSPECIFIED, None)
    _, values, _ = colourize.imposed_colour(regions, np.zeros((20, 40), np.int32), lightness, palette)
    chroma = np.linalg.norm(values, axis=2)
    assert chroma[5:15, 3:17].max() < 0.3 * np.linalg.norm(palette.cloth(0))
    assert chroma[5:15, 23:37].min() > 0.6 * np.linalg.norm(palette.skin)


def test_a_shirt_as_light_as_the_old_prints_white_is_white():
    """An old print's white scans at L 85, not 100: a shirt at L 80 there was white; in a modern photo whose
    whites reach 100 the same grey is a pale dye."""
    regions = np.full((20, 40), colourize.CLOTH, np.uint8)
    palette = colourize.Palette.draw(2, common_pb2.GENDER_UNSPECIFIED, None)
    chroma = {}
    for white in (85.0, 100.0):
        lightness = np.full((20, 40), 80.0, np.float32)
        lightness[:, 36:] = white  # the paper's edge, or a white wall
        _, values, _ = colourize.imposed_colour(regions, np.zeros((20, 40), np.int32), lightness, palette)
        chroma[white] = float(np.linalg.norm(values, axis=2)[5:15, 3:30].max())
    dye = float(np.linalg.norm(palette.cloth(0)))
    assert chroma[85.0] < 0.15 * dye < 0.3 * dye < chroma[100.0]


def test_a_sky_above_the_heads_is_sky_and_a_studio_wall_is_not():
    """In a portrait, bright smooth ground reaching the top is sky when it ends above the heads (a horizon),
    and a backdrop when it runs down beside the sitter."""
    label = np.full((60, 80), 255, np.uint8)  # outside the face's parsing crop
    label[14:50, 25:55] = parsing.Label.BACKGROUND
    label[30:42, 35:45] = parsing.Label.SKIN
    person = np.zeros((60, 80), np.float32)
    person[26:, 30:50] = 1.0
    outdoors = np.full((60, 80), 40.0, np.float32)
    outdoors += np.random.default_rng(0).normal(0, 6, outdoors.shape).astype(np.float32)  # textured ground
    outdoors[:24] = 80.0  # a smooth bright sky down to a horizon above the head
    regions, _ = colourize.region_map(outdoors, [label], person, portrait=True)
    assert (regions[:20] == colourize.SKY).mean() > 0.9
    studio = np.full((60, 80), 80.0, np.float32)  # one smooth bright wall behind and beside the sitter
    regions, _ = colourize.region_map(studio, [label], person, portrait=True)
    assert not (regions == colourize.SKY).any()


def test_where_the_scene_network_is_sure_candidates_agree_and_where_it_guesses_they_differ(monkeypatch):
    monkeypatch.setattr(colourize, "SCENE_WEIGHTS", ((10.0, 1.0), (30.0, 0.0)))
    lightness = np.full((32, 48), 55.0, np.float32)
    regions = np.full(lightness.shape, colourize.BACKGROUND, np.uint8)
    owners = np.zeros(lightness.shape, np.int32)
    scene_ab = np.broadcast_to(np.float32([-20.0, 25.0]), (*lightness.shape, 2)).copy()  # foliage green
    spread = np.where(np.arange(48) < 24, 10.0, 30.0)
    spread = np.broadcast_to(spread, lightness.shape).astype(np.float32)
    imposed = [colourize.imposed_colour(regions, owners, lightness, colourize.Palette.draw(seed, 0, None), True,
                                        (scene_ab, spread))[1] for seed in (1, 2)]
    for ab_planes in imposed:
        np.testing.assert_allclose(ab_planes[:, :24], scene_ab[:, :24])  # sure: the network's colour, whole
    assert np.linalg.norm(imposed[0][:, 24:] - imposed[1][:, 24:], axis=-1).min() > 10  # guessing: the backdrops
    assert np.linalg.norm(imposed[0][:, 24:] - scene_ab[:, 24:], axis=-1).min() > 10


def test_the_scene_networks_blotchy_colour_is_one_colour_per_stretch_of_alike_lightness(monkeypatch):
    """The network's colour changes from block to block; a dark table and a bright cup each come out one
    colour, the mean of what the network said over them, and the two do not bleed into each other."""
    monkeypatch.setattr(colourize, "SCENE_WEIGHTS", ((10.0, 1.0), (30.0, 1.0)))
    lightness = np.full((64, 96), 30.0, np.float32)
    lightness[:, 48:] = 80.0
    regions = np.full(lightness.shape, colourize.BACKGROUND, np.uint8)
    owners = np.zeros(lightness.shape, np.int32)
    truth = np.where((np.arange(96) < 48)[None, :, None], np.float32([-20.0, 25.0]), np.float32([10.0, -20.0]))
    truth = np.broadcast_to(truth, (*lightness.shape, 2))
    blocks = np.random.default_rng(5).normal(0, 15, (16, 24, 2)).astype(np.float32)
    scene_ab = (truth + np.kron(blocks, np.ones((4, 4, 1), np.float32))).astype(np.float32)
    spread = np.full(lightness.shape, 6.0, np.float32)
    palette = colourize.Palette.draw(1, common_pb2.GENDER_UNSPECIFIED, None)
    solved = colourize.colour_planes(lightness, regions, owners, False, palette, (scene_ab, spread))
    for side in (slice(0, 44), slice(52, 96)):
        assert solved[:, side].std(axis=(0, 1)).max() < 0.25 * scene_ab[:, side].std(axis=(0, 1)).max()
        assert np.abs(solved[:, side].mean(axis=(0, 1)) - truth[0, side].mean(axis=0)).max() < 4


def test_a_knit_vest_of_the_faces_grey_is_not_taken_for_bare_skin():
    """A cracked scan: the face's skin is crossed by bright cracks and shadowed at its edge, which widen its
    lightness spread; a textured vest whose mean grey lies within that spread stays clothes, while a smooth
    chest of the skin's own grey is still bare skin, and a smooth lit patch of the vest smaller than a hand is not."""
    rng = np.random.default_rng(3)
    lightness = np.full((80, 80), 40.0, np.float32)
    label = np.full((80, 80), parsing.Label.BACKGROUND, np.uint8)
    label[5:35, 25:55] = parsing.Label.SKIN
    lightness[5:35, 25:55] = 70.0 + rng.normal(0, 1.0, (30, 30))
    lightness[12:14, 25:55] = 95.0  # a crack across the face
    lightness[5:35, 25:28] = 35.0  # the shadowed edge of the cheek
    label[35:40, 25:55] = parsing.Label.CLOTH
    lightness[35:40, 25:55] = 85.0  # a pale collar
    lightness[40:80, 10:45] = 52.0 + rng.normal(0, 6.0, (40, 35))  # a knit vest, mid grey
    lightness[40:80, 45:70] = 70.0 + rng.normal(0, 1.0, (40, 25))  # an open shirt front: bare chest
    lightness[60:68, 15:23] = 70.0 + rng.normal(0, 1.0, (8, 8))  # the vest's lit side, smooth there
    person = np.zeros((80, 80), np.float32)
    person[5:, 10:70] = 1.0
    regions, _ = colourize.region_map(lightness, [label], person, portrait=True)
    assert (regions[45:75, 15:40] == colourize.SKIN).mean() < 0.05
    assert not (regions[60:68, 15:23] == colourize.SKIN).any()
    assert (regions[45:75, 50:65] == colourize.SKIN).mean() > 0.9


def test_a_white_shirt_under_a_dark_vest_stays_white_in_its_shadows_and_a_knit_stays_one_garment():
    """Old portraits dress a white shirt under a dark vest: the shirt's shaded sleeve (L 62, too dark for the dye
    to fade) is the shirt's, not dyed with the vest; a knit of light and dark stitches is one dyed garment."""
    rng = np.random.default_rng(5)
    label = np.full((80, 80), parsing.Label.BACKGROUND, np.uint8)
    label[5:30, 25:55] = parsing.Label.SKIN
    label[30:80, 5:75] = parsing.Label.CLOTH
    person = np.zeros((80, 80), np.float32)
    person[5:, 5:75] = 1.0
    palette = colourize.Palette.draw(2, common_pb2.GENDER_UNSPECIFIED, None)

    def dyed(lightness: np.ndarray) -> np.ndarray:
        regions, owners = colourize.region_map(lightness, [label], person, portrait=True)
        _, values, _ = colourize.imposed_colour(regions, owners, lightness, palette)
        return np.linalg.norm(values, axis=2)

    lightness = np.full((80, 80), 50.0, np.float32)
    lightness[5:30, 25:55] = 70.0
    lightness[30:80, 5:75] = 86.0 + rng.normal(0, 1.0, (50, 70))  # the shirt, lit
    lightness[30:80, 5:15] = 62.0 + rng.normal(0, 1.0, (50, 10))  # its sleeve, in shadow
    lightness[40:80, 20:60] = 30.0 + rng.normal(0, 2.0, (40, 40))  # the vest
    chroma = dyed(lightness)
    assert chroma[45:75, 7:13].max() < 1.0 and chroma[50:70, 25:55].mean() > 0.6 * np.linalg.norm(palette.cloth(0))
    knit = lightness.copy()
    knit[30:80, 5:75] = np.where(rng.random((50, 70)) < 0.5, 40.0, 75.0)  # stitches, finer than the solve sees
    assert dyed(knit)[40:75, 10:70].mean() > 0.4 * np.linalg.norm(palette.cloth(0))


@pytest.mark.parametrize("colour", [common_pb2.RED, common_pb2.BLOND, common_pb2.BROWN])
def test_dark_hair_asked_for_a_colour_shows_it_and_keeps_its_strands_in_order(colour):
    """Near-black hair cannot show red at its own lightness (sRGB has no such colour): its tones are lifted
    just enough, in order, and nothing outside the hair moves. Hair the colour can show keeps its lightness."""
    rng = np.random.default_rng(0)
    grey = np.full((60, 60, 3), 120, np.uint8)
    strands = np.clip(25 + rng.normal(0, 8, (30, 40)), 0, 255).astype(np.uint8)  # L ~ 8-12: very dark hair
    grey[10:40, 10:50] = strands[..., None]
    hair = np.zeros((60, 60), bool)
    hair[10:40, 10:50] = True
    tinted = colourize.tint_hair(grey, hair, colour)
    inner = np.s_[14:36, 14:46]  # inside the feathered edge
    median_ab = np.median(ab(tinted)[inner].reshape(-1, 2), axis=0)
    assert np.linalg.norm(median_ab - np.asarray(colourize.HAIR_COLOURS[colour])) <= 8.0
    before, after = rgb_to_lab(grey)[..., 0][inner].ravel(), rgb_to_lab(tinted)[..., 0][inner].ravel()
    assert np.corrcoef(before, after)[0, 1] > 0.95  # the strands' texture, kept
    assert (tinted[~hair] == grey[~hair]).all()


def test_hair_the_colour_can_show_keeps_its_lightness():
    rng = np.random.default_rng(1)
    lightness = np.clip(0.45 + rng.normal(0, 0.05, 500), 0, 1)  # mid-brown hair: red exists at L 35-55
    np.testing.assert_allclose(colourize.hair_tones(lightness, common_pb2.RED), lightness, atol=1e-6)
    white = np.clip(0.92 + rng.normal(0, 0.03, 500), 0, 1)  # white hair asked red: moved down, still in order
    toned = colourize.hair_tones(white, common_pb2.RED)
    assert np.percentile(toned, 95) <= colourize.shown_lightness(common_pb2.RED)[1] / 100 + 1e-6
    assert (np.argsort(toned, kind="stable") == np.argsort(white, kind="stable")).all()


def test_long_hair_beyond_the_parses_square_takes_the_colour_but_the_dress_and_the_room_do_not():
    close = np.full((100, 100), parsing.OUTSIDE, np.uint8)
    close[0:50, 20:80] = parsing.Label.BACKGROUND  # the face's square ends at row 50
    close[10:50, 30:70] = parsing.Label.HAIR
    close[12:16, 40:48] = parsing.Label.BACKGROUND  # a hole the close parse leaves in a high hairdo
    close[20:45, 40:60] = parsing.Label.SKIN
    wide = np.full((100, 100), parsing.Label.BACKGROUND, np.uint8)
    wide[10:80, 30:70] = parsing.Label.HAIR  # the wide parse: hair down to the shoulders
    wide[20:45, 40:60] = parsing.Label.HAIR  # and, coarser, over the face the close parse knows better
    wide[80:, 25:75] = parsing.Label.CLOTH  # the dress below, of the hair's grey
    wide[40:90, 80:95] = parsing.Label.HAIR  # a dark door it took for hair, beside the person
    person = np.zeros((100, 100), np.float32)
    person[5:, 25:75] = 1.0
    hair = colourize.photo_hair([close], [wide], person)
    assert hair[50:80, 30:70].all()  # the hair beyond the square, to the shoulders
    assert hair[12:16, 40:48].all()  # and the hole in it
    assert not hair[20:45, 40:60].any()  # the close parse's skin stays skin
    assert not hair[80:].any() and not hair[:, 78:].any()  # neither the dress nor the door


def test_consecutive_candidates_stand_on_different_walls_under_different_blue_skies():
    """The gateway asks for consecutive seeds: neighbours never share a wall, a dye or a sky, and every sky is blue."""
    palettes = [colourize.Palette.draw(seed, common_pb2.GENDER_UNSPECIFIED, None) for seed in range(12)]
    for first, second in itertools.pairwise(palettes):
        for region in ("backdrop", "hat", "sky"):
            assert np.linalg.norm(np.subtract(getattr(first, region), getattr(second, region))) >= 8, region
    assert all(palette.sky[1] < -5 and abs(palette.sky[0]) < palette.sky[1] * -0.5 for palette in palettes)


def test_the_skin_behind_spectacles_takes_the_faces_colour():
    """The parser labels the lenses glasses, eyes and skin behind them included; they are seen through, so they
    come out skin-coloured like the face around them, not grey goggles. Sunglasses stay dark grey."""
    lightness = np.full((60, 60), 60.0, np.float32)
    label = np.full((60, 60), parsing.Label.BACKGROUND, np.uint8)
    label[10:50, 10:50] = parsing.Label.SKIN
    label[20:30, 15:45] = parsing.Label.GLASSES
    lightness[20, 15:45] = lightness[29, 15:45] = 30.0  # the rims
    person = np.zeros((60, 60), np.float32)
    person[10:, 10:50] = 1.0
    palette = colourize.Palette.draw(3, common_pb2.GENDER_UNSPECIFIED, None)
    regions, owners = colourize.region_map(lightness, [label], person, portrait=True)
    solved = colourize.colour_planes(lightness, regions, owners, True, palette)
    lens = solved[22:28, 18:42].reshape(-1, 2)
    assert np.abs(lens - np.asarray(palette.skin)).max() < 3
    lightness[21:29, 15:45] = 12.0  # sunglasses: dark lenses stay grey
    regions, owners = colourize.region_map(lightness, [label], person, portrait=True)
    solved = colourize.colour_planes(lightness, regions, owners, True, palette)
    assert np.linalg.norm(solved[22:28, 18:42], axis=-1).max() < 1


def test_shaded_sockets_behind_spectacles_are_judged_against_the_face_not_a_lit_chest():
    """A face lit from one side spreads its skin's greys wide, and the sockets behind the lenses lie in its
    shade; a lit bare chest far larger than the face, counted as skin too, would narrow the skin to its own
    light grey and leave the sockets grey goggles (a real boy's portrait)."""
    lightness = np.full((100, 60), 20.0, np.float32)
    label = np.full((100, 60), parsing.Label.BACKGROUND, np.uint8)
    label[5:45, 10:50] = parsing.Label.SKIN
    lightness[5:45, 10:30], lightness[5:45, 30:50] = 40.0, 80.0  # the shaded and the lit cheek
    label[15:25, 15:45] = parsing.Label.GLASSES
    lightness[15:25, 15:45] = 45.0  # sockets in the shade of the brows
    lightness[45:100, 5:55] = 80.0  # an open shirt: a lit bare chest
    person = np.zeros((100, 60), np.float32)
    person[5:, 5:55] = 1.0
    regions, _ = colourize.region_map(lightness, [label], person, portrait=True)
    assert (regions[55:95, 10:50] == colourize.SKIN).mean() > 0.9
    assert not (regions[16:24, 16:44] == colourize.NEUTRAL).any()


def test_brows_are_hairs_over_skin_not_grey_between_warm_cheeks():
    """At the solve's scale a brow is a few pixels of hairs over skin: its colour lies halfway between the
    hair's and the skin's, as warm as skin is, not the faded hair grey that read as blue brows."""
    lightness = np.full((60, 60), 65.0, np.float32)
    label = np.full((60, 60), parsing.Label.BACKGROUND, np.uint8)
    label[5:55, 5:55] = parsing.Label.SKIN
    label[0:5, 5:55] = parsing.Label.HAIR
    lightness[0:5, 5:55] = 20.0
    label[18:22, 12:28] = label[18:22, 32:48] = parsing.Label.LEFT_BROW
    lightness[18:22, 12:28] = lightness[18:22, 32:48] = 35.0
    person = np.zeros((60, 60), np.float32)
    person[:, 5:55] = 1.0
    palette = colourize.Palette.draw(2, common_pb2.GENDER_UNSPECIFIED, None)
    regions, owners = colourize.region_map(lightness, [label], person, portrait=True)
    _, values, _ = colourize.imposed_colour(regions, owners, lightness, palette)
    brow = values[19:21, 14:26].reshape(-1, 2).mean(axis=0)
    hair = np.asarray(colourize.hair_ab(lightness, regions == colourize.HAIR))
    fade = min(1.0, 35.0 / 25.0)
    assert np.allclose(brow, fade * (colourize.BROW_HAIR * hair + (1 - colourize.BROW_HAIR) * np.asarray(palette.skin)),
                       atol=0.5)
    assert np.linalg.norm(brow) > 0.5 * np.linalg.norm(palette.skin)


def parsed_face(shape: tuple[int, int], ground: float, skin: tuple[slice, slice], skin_lightness: float,
                seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    """(the noise to draw more with, lightness, parse) of a solve grid of `ground` lightness, parsed as background
    but for a face's skin over `skin`, of `skin_lightness` with a little grain."""
    rng = np.random.default_rng(seed)
    lightness = np.full(shape, ground, np.float32)
    label = np.full(shape, parsing.Label.BACKGROUND, np.uint8)
    label[skin] = parsing.Label.SKIN
    lightness[skin] = skin_lightness + rng.normal(0, 1.0, lightness[skin].shape)
    return rng, lightness, label


def test_a_head_the_analyser_missed_takes_no_dye_and_its_clothes_below_do():
    """Two people, one face found: beside the found head, at its height, the other head (its face paler than the
    found one) is neither clothes nor dyed; below the chins, the other person's clothes are."""
    rng, lightness, label = parsed_face((80, 80), 90.0, (slice(5, 20), slice(5, 35)), 50.0, seed=6)
    label[20:35, 5:35] = parsing.Label.CLOTH
    lightness[20:80, 5:35] = 30.0 + rng.normal(0, 5.0, (60, 30))
    lightness[5:20, 45:75] = 75.0  # the missed face
    lightness[22:80, 45:75] = 30.0 + rng.normal(0, 5.0, (58, 30))  # its clothes
    person = np.zeros((80, 80), np.float32)
    person[5:, 5:35] = person[5:, 45:75] = 1.0
    regions, _ = colourize.region_map(lightness, [label], person, portrait=True)
    assert not (regions[6:18, 47:73] == colourize.CLOTH).any()
    assert (regions[45:75, 47:73] == colourize.CLOTH).mean() > 0.9


def test_long_hair_below_the_chin_is_hair_and_a_smooth_dark_shirt_beside_it_is_not():
    """Hair parsed down to the chin goes on down a woman's back, as rough as the parsed hair and of its tones:
    it is hair, not a dyed garment; a smooth shirt of the same grey, touching it, stays clothes."""
    rng, lightness, label = parsed_face((100, 80), 85.0, (slice(5, 30), slice(25, 55)), 70.0, seed=8)
    label[0:36, 8:25] = parsing.Label.HAIR
    strands = 25.0 + 10.0 * np.sin(np.arange(17) * 2.0)  # locks, light and dark side by side
    lightness[0:80, 8:25] = strands + rng.normal(0, 3.0, (80, 17))  # the hair, parsed to row 36, falling to 80
    label[30:36, 25:55] = parsing.Label.CLOTH
    lightness[30:100, 25:60] = 25.0 + rng.normal(0, 0.5, (70, 35))  # a smooth dark shirt
    person = np.zeros((100, 80), np.float32)
    person[:, 8:60] = 1.0
    regions, _ = colourize.region_map(lightness, [label], person, portrait=True)
    assert (regions[40:68, 10:23] == colourize.HAIR).mean() > 0.6  # within reach: a face and a half below
    assert (regions[45:95, 30:58] == colourize.HAIR).mean() < 0.05
