"""Gender and age as training signals: crops around faces, and face-api's age/gender network as the critic.

No registry package ships photos labelled with gender and age, and a plain
restoration loss teaches a network to ignore the gender and age planes (the
photo already shows who it is). So on crops around faces the network is
asked for a random gender and age, and face-api's age/gender network,
rebuilt in PyTorch from the npm package's weights
(`training.faces.networks`), judges the prediction; its gradient
says how tone and colour should move. The reconstruction loss still pulls
towards the true photo, so the network follows the request only as far as
that costs little fidelity: weakly, which is why the gateway also ranks
candidates by the same analyser.

The critic finally sees what the composer would serve: the prediction at
twice the working resolution plus the photo's own lightness detail there
(`Pair.detail`), as the face analyser sees a full-resolution candidate
(`AttributeCritic` says why it first looks at working resolution). The
network's change to the photo is blurred first (`CRITIC_BLUR`): pixel-level
patterns that fool a classifier cannot pass, only the smooth shifts of skin,
lip and hair tone that the composer carries to the full-resolution photo.

Face photos: the npm package's demo photos that no test or benchmark uses
(`TRAIN_PHOTOS`), and matplotlib's Grace Hopper; the face boxes come from
the detector's own face analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from revive.v1 import common_pb2
from torch.nn import functional as F

from services.generator.planes import AGE_SPAN, CONDITIONS, LAB_SCALE, Conditions
from services.vision.faces import geometry
from services.vision.faces.analyzer import FaceAnalyzer
from training.common.artifacts import REPO
from training.common.tfjs_weights import load_weights
from training.detector.synthetic_damage import DamageParams, DamageSynthesizer
from training.faces.networks import AgeGenderNet, ParamLoader
from training.generator.dataset import Pair, pair_from_crop, random_conditions, with_tries

DEFAULT_NPM_DIR = Path("build/npm/node_modules/@vladmandic/face-api")
#: Demo photos of the npm package used for training; tests/data/faces holds the others (the benchmark's).
TRAIN_PHOTOS = ("demo/sample2.jpg", "demo/sample4.jpg", "demo/sample5.jpg")
EXTRA_PHOTOS = ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",)
#: Side of the face-api age/gender input.
CRITIC_SIDE = 112
#: How the critic looks at a prediction (see AttributeCritic).
VIEWS = ("working", "served")
#: Gaussian sigma (working-resolution pixels) of the blur the critic looks through.
CRITIC_BLUR = 1.5
#: The face box's side as a share of the crop's: faces as large as in a portrait at working resolution.
FACE_SHARE = (0.35, 0.65)
#: Face-guided pairs that ask for each attribute (the rest leave it to the photo).
ASK_SHARE = 0.8
#: Face-guided pairs with no damage drawn: only the print's tone to restore and the colour to choose.
UNDAMAGED_FACE_SHARE = 0.3
#: Face batches draw from their own random stream, so adding them leaves the ordinary batches as they were.
FACE_STREAM = 1
#: A black-and-white print: the case where colour, hence the conditions, are the network's to choose.
BLACK_AND_WHITE = DamageSynthesizer(DamageParams(p_grayscale=1.0))


@dataclass
class FacePhoto:
    rgb: np.ndarray
    #: K x 4 square boxes (x, y, side, side): face-api's age/gender crop of each face.
    boxes: np.ndarray


def square(box: np.ndarray) -> np.ndarray:
    side = max(box[2], box[3])
    return np.array([box[0] + box[2] / 2 - side / 2, box[1] + box[3] / 2 - side / 2, side, side])


def analysed(rgb: np.ndarray, analyzer: FaceAnalyzer) -> FacePhoto:
    faces = [face for face in analyzer.analyze(rgb) if len(face.embedding)]
    boxes = [square(geometry.landmark_box(np.array([(p.x, p.y) for p in face.landmarks]))) for face in faces]
    return FacePhoto(rgb, np.array(boxes, np.float32).reshape(-1, 4))


def load_face_photos(npm_dir: Path, data_dir: Path, analyzer: FaceAnalyzer) -> list[FacePhoto]:
    """The training face photos with their face boxes; those without a usable face are dropped."""
    paths = [npm_dir / name for name in TRAIN_PHOTOS] + [data_dir / name for name in EXTRA_PHOTOS]
    photos = [analysed(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), analyzer) for path in paths]
    return [photo for photo in photos if len(photo.boxes)]


def face_crop(photo: FacePhoto, side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A side x side crop holding one face (random face, scale, place and flip), and its box in the crop."""
    box = photo.boxes[int(rng.integers(0, len(photo.boxes)))]
    height, width = photo.rgb.shape[:2]
    region = int(min(box[2] / rng.uniform(*FACE_SHARE), height, width))
    x0 = int(np.clip(rng.uniform(box[0] + box[2] - region, box[0]), 0, width - region))
    y0 = int(np.clip(rng.uniform(box[1] + box[3] - region, box[1]), 0, height - region))
    # Area resampling, as the engine downscales a photo to its working resolution.
    crop = cv2.resize(photo.rgb[y0:y0 + region, x0:x0 + region], (side, side), interpolation=cv2.INTER_AREA)
    scale = side / region
    inside = np.array([(box[0] - x0) * scale, (box[1] - y0) * scale, box[2] * scale, box[3] * scale], np.float32)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
        inside[0] = side - inside[0] - inside[2]
    return np.ascontiguousarray(crop), inside


def face_pair(photo: FacePhoto, size: int, rng: np.random.Generator) -> tuple[Pair, np.ndarray, Conditions]:
    """An aged black-and-white face crop to colourize with a random request, its box at twice the working resolution."""
    crop, box = face_crop(photo, 2 * size, rng)
    conditions = random_conditions(True, rng, ASK_SHARE)
    pair = pair_from_crop(crop, BLACK_AND_WHITE, size, rng, undamaged=rng.random() < UNDAMAGED_FACE_SHARE,
                          conditions=conditions)
    return pair, box, conditions


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Normalised Lab (N x 3 x H x W) -> sRGB 0..1, differentiable (D65, as OpenCV converts)."""
    lightness, a, b = (lab * torch.from_numpy(LAB_SCALE).view(1, 3, 1, 1)).unbind(1)
    fy = (lightness + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], 1)
    delta = 6.0 / 29.0
    xyz = torch.where(f > delta, f**3, 3 * delta**2 * (f - 4.0 / 29.0))
    xyz = xyz * torch.tensor([0.950456, 1.0, 1.088754]).view(1, 3, 1, 1)
    to_rgb = torch.tensor([[3.240479, -1.53715, -0.498535], [-0.969256, 1.875991, 0.041556],
                           [0.055648, -0.204043, 1.057311]])
    linear = torch.einsum("rc,nchw->nrhw", to_rgb, xyz).clamp(0.0, 1.0)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp_min(1e-8) ** (1 / 2.4) - 0.055, 12.92 * linear)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / sigma) ** 2)
    taps = (taps / taps.sum()).repeat(x.shape[1], 1)
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    across = F.conv2d(padded, taps[:, None, None, :], groups=x.shape[1])
    return F.conv2d(across, taps[:, None, :, None], groups=x.shape[1])


class AttributeCritic(torch.nn.Module):
    """face-api's age/gender network on the face box of a Lab prediction: (age in years, P(female)).

    Two views, taught in that order (`--critic-view`): "working" judges the
    prediction at working resolution, where the network's change is all there
    is to see and the gradient is strong; "served" judges it as the composer
    serves it, with the photo's lightness detail at twice the resolution,
    where the analyser looks. Starting with "served" the network barely
    learns (the detail dominates the critic's view); after "working" it
    carries over what survives composition.
    """

    def __init__(self, npm_dir: Path) -> None:
        super().__init__()
        loader = ParamLoader(load_weights(npm_dir / "model" / "age_gender_model-weights_manifest.json"))
        self.net = AgeGenderNet(loader).eval()
        loader.check_all_used()
        self.net.requires_grad_(False)

    def forward(self, prediction: torch.Tensor, source: torch.Tensor, detail: torch.Tensor, boxes: torch.Tensor,
                view: str = "served") -> tuple[torch.Tensor, torch.Tensor]:
        """prediction and source (the network's input Lab): N x 3 x H x W; detail: N x 2H x 2W (`Pair.detail`);
        boxes: N x 4 at 2H x 2W."""
        if view not in VIEWS:
            raise ValueError(f"critic view {view!r} is not one of {VIEWS}")
        seen = source + gaussian_blur(prediction - source, CRITIC_BLUR)
        if view == "served":
            seen = F.interpolate(seen, scale_factor=2.0, mode="bilinear", align_corners=False)
            seen = seen + F.pad(detail[:, None], (0, 0, 0, 0, 0, 2))
        else:
            boxes = boxes / 2.0
        rgb = lab_to_rgb(seen)
        height, width = rgb.shape[2:]
        # Affine grids mapping the critic's square onto each (x, y, side, side) box, in grid_sample's -1..1.
        theta = torch.zeros(len(boxes), 2, 3)
        theta[:, 0, 0] = boxes[:, 2] / width
        theta[:, 0, 2] = (2 * boxes[:, 0] + boxes[:, 2]) / width - 1
        theta[:, 1, 1] = boxes[:, 3] / height
        theta[:, 1, 2] = (2 * boxes[:, 1] + boxes[:, 3]) / height - 1
        grid = F.affine_grid(theta, [len(boxes), 3, CRITIC_SIDE, CRITIC_SIDE], align_corners=False)
        faces = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=False)
        age, gender = self.net(faces.permute(0, 2, 3, 1) * 255.0)
        return age, gender[:, 1]


def attribute_loss(age: torch.Tensor, female: torch.Tensor, asked: list[Conditions]) -> torch.Tensor:
    """Per face: -log P(asked gender) when a gender was asked, plus |age - asked| / AGE_SPAN (Huber) when an age was."""
    losses = []
    for row, conditions in enumerate(asked):
        loss = age.new_zeros(())
        if conditions.gender != common_pb2.GENDER_UNSPECIFIED:
            wanted = female[row] if conditions.gender == common_pb2.FEMALE else 1.0 - female[row]
            loss = loss - torch.log(wanted.clamp_min(1e-4))
        if conditions.age is not None:
            loss = loss + F.smooth_l1_loss(age[row] / AGE_SPAN, age.new_tensor(conditions.age / AGE_SPAN), beta=0.2)
        losses.append(loss)
    return torch.stack(losses)

def batch(photos: list[FacePhoto], size: int, count: int, tries: int, seed: int,
          step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Conditions]]:
    """`count` face pairs laid out as `dataset.with_tries`, plus each row's detail, face box and request."""
    rng = np.random.default_rng([seed, step, FACE_STREAM])
    drawn = [face_pair(photos[int(rng.integers(0, len(photos)))], size, rng) for _ in range(count)]
    inputs, targets, damage = with_tries([pair for pair, _, _ in drawn], tries, rng)
    details = np.repeat(np.stack([pair.detail for pair, _, _ in drawn]), tries, axis=0)
    boxes = np.repeat(np.stack([box for _, box, _ in drawn]), tries, axis=0)
    return inputs, targets, damage, details, boxes, [conditions for _, _, conditions in drawn for _ in range(tries)]


def held_out_photos(analyzer: FaceAnalyzer) -> list[FacePhoto]:
    """The benchmark's face photos (tests/data/faces), for watching the conditions take effect."""
    paths = sorted((REPO / "tests" / "data" / "faces").glob("*.jpg"))
    return [analysed(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), analyzer) for path in paths]


@torch.no_grad()
def condition_margins(model: torch.nn.Module, critic: AttributeCritic, photos: list[FacePhoto], size: int,
                      count: int = 12, seed: int = 2026) -> dict[str, float]:
    """What asking changes, as the critic sees the served photo: P(female) asked female minus asked male; age asked 70
    minus 20."""
    rng = np.random.default_rng(seed)
    pairs = [face_pair(photos[i % len(photos)], size, rng) for i in range(count)]
    inputs, _, _ = with_tries([pair for pair, _, _ in pairs], 1, rng)
    details = torch.from_numpy(np.stack([pair.detail for pair, _, _ in pairs]))
    boxes = torch.from_numpy(np.stack([box for _, box, _ in pairs]))

    def judged(conditions: Conditions) -> tuple[torch.Tensor, torch.Tensor]:
        planes = torch.from_numpy(inputs.copy())
        planes[:, CONDITIONS] = torch.tensor(conditions.values()).view(1, -1, 1, 1)
        return critic(model(planes), planes[:, :3], details, boxes)

    female = judged(Conditions(True, common_pb2.FEMALE))[1] - judged(Conditions(True, common_pb2.MALE))[1]
    older = judged(Conditions(True, age=70.0))[0] - judged(Conditions(True, age=20.0))[0]
    return {"val_female_margin": round(float(female.mean()), 4), "val_age_margin_years": round(float(older.mean()), 2)}
