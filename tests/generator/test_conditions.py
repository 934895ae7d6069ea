"""Gender and age as conditions of the generator network: the planes, the weight surgery, the training parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from revive.v1 import common_pb2
from torch.nn import functional as F

from services.generator.planes import CHANNELS, CONDITIONS, NOISE_CHANNELS, Conditions, lab_to_rgb, network_input
from training.generator import faces
from training.generator.model import RestorationNet, with_gender_and_age_inputs

NPM_DIR = Path(__file__).resolve().parents[2] / faces.DEFAULT_NPM_DIR


def test_options_become_condition_planes():
    asked = Conditions.of(True, common_pb2.RestoreOptions(gender=common_pb2.MALE, age=70))
    assert asked.values() == (1.0, -1.0, 1.0, 1.0)
    assert Conditions.of(False, common_pb2.RestoreOptions(gender=common_pb2.FEMALE)).values() == (0.0, 1.0, 0.0, 0.0)
    # Age absent and age asked are different requests, whatever the age.
    assert Conditions.of(False, common_pb2.RestoreOptions()).values() == (0.0, 0.0, 0.0, 0.0)
    assert Conditions.of(False, common_pb2.RestoreOptions(age=40)).values() == (0.0, 0.0, 0.0, 1.0)

    noise = np.full((NOISE_CHANNELS, 4, 6), 7.0, np.float32)
    planes = network_input(np.zeros((4, 6, 3), np.float32), np.zeros((4, 6), np.float32),
                           np.zeros((4, 6), np.float32), asked, noise)
    assert planes.shape == (CHANNELS, 4, 6)
    assert np.array_equal(planes[CONDITIONS, 0, 0], asked.values())
    assert np.array_equal(planes[-NOISE_CHANNELS:], noise)


def test_widening_an_unconditioned_network_keeps_what_it_computes():
    """The committed weights predate gender and age: widened, the first layer sees exactly what it saw."""
    torch.manual_seed(0)
    old_planes = CHANNELS - 3  # photo, masks, colourize flag, noise
    old_weight = torch.randn(32, old_planes * 4, 3, 3)
    widened = RestorationNet()
    old_state = {**RestorationNet().state_dict(), "enc1.0.0.weight": old_weight}
    widened.load_state_dict(with_gender_and_age_inputs(old_state))

    old_input = torch.randn(2, old_planes, 16, 24)
    new_input = torch.cat([old_input[:, :CONDITIONS.start + 1], torch.randn(2, 3, 16, 24),  # gender, age, age asked
                           old_input[:, CONDITIONS.start + 1:]], 1)
    first = widened.enc1[0][0]
    with torch.no_grad():
        expected = F.conv2d(F.pixel_unshuffle(old_input, 2), old_weight, first.bias, padding=1)
        assert torch.allclose(first(F.pixel_unshuffle(new_input, 2)), expected, atol=1e-5)
    state = widened.state_dict()
    assert with_gender_and_age_inputs(state) is state  # today's layout passes through
    with pytest.raises(ValueError):
        with_gender_and_age_inputs({"enc1.0.0.weight": torch.zeros(32, 20, 3, 3)})


def test_differentiable_lab_to_rgb_is_opencvs():
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    from services.generator.planes import rgb_to_lab

    lab = torch.from_numpy(rgb_to_lab(rgb).transpose(2, 0, 1)[None].copy())
    back = faces.lab_to_rgb(lab)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.round(back * 255) - lab_to_rgb(rgb_to_lab(rgb)).astype(float)).max() <= 1


def test_face_crops_hold_the_face():
    photo = faces.FacePhoto(np.zeros((300, 400, 3), np.uint8), np.array([[250, 40, 60, 60]], np.float32))
    photo.rgb[40:100, 250:310] = 255
    for seed in range(20):
        crop, box = faces.face_crop(photo, 96, np.random.default_rng(seed))
        assert crop.shape == (96, 96, 3)
        x, y, w, h = box
        assert -0.5 <= x and -0.5 <= y and x + w <= 96.5 and y + h <= 96.5
        inside = crop[int(y + h * 0.25):int(y + h * 0.75), int(x + w * 0.25):int(x + w * 0.75)]
        assert inside.min() >= 200 and crop.mean() < 200  # the white face is in the box, and not everywhere


@pytest.mark.skipif(not NPM_DIR.exists(), reason="needs the npm package (training/faces/reference.sh)")
def test_critic_is_the_analysers_age_gender_network():
    """The served ONNX file's network; shown a photo the generator left alone, it reads the face as the analyser does."""
    import cv2

    from services.common.runtime import RuntimeOptions
    from services.generator.planes import rgb_to_lab
    from services.vision.faces.analyzer import FaceAnalyzer

    analyzer = FaceAnalyzer(Path("models") / "faces", RuntimeOptions())
    critic = faces.AttributeCritic(NPM_DIR)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 112, 112, 3)).astype(np.float32)
    ages, genders = analyzer.age_gender.run({"image": batch})
    with torch.no_grad():
        age, gender = critic.net(torch.from_numpy(batch))
    assert np.allclose(age.numpy(), ages, atol=1e-2) and np.allclose(gender.numpy(), genders, atol=1e-3)

    photo = cv2.cvtColor(cv2.imread(str(Path(__file__).resolve().parents[1] / "data" / "faces" / "sample1.jpg")),
                         cv2.COLOR_BGR2RGB)
    photo = photo[:photo.shape[0] // 2 * 2, :photo.shape[1] // 2 * 2]
    x, y, side, _ = faces.analysed(photo, analyzer).boxes[0]
    working = rgb_to_lab(cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA))
    detail = rgb_to_lab(photo)[..., 0] - cv2.resize(working[..., 0], photo.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    with torch.no_grad():
        unchanged = torch.from_numpy(working.transpose(2, 0, 1)[None].copy())
        age, female = critic(unchanged, unchanged, torch.from_numpy(detail[None]), torch.tensor([[x, y, side, side]]))
    reference = analyzer.analyze(photo)[0]
    assert abs(float(age) - reference.age) < 6  # the critic crops a square of the photo; face-api pads its box
    assert (float(female) > 0.5) == (reference.gender == common_pb2.FEMALE)
