"""RestorationNet: a small conditional U-Net that predicts restored Lab at working resolution.

It sees the photo (normalised Lab), where the damage and the fading are,
whether to colourize, and seeded noise (`services.generator.planes`), and
predicts a correction added to the input Lab: the fill of damaged areas, the
tone (fading) and cast correction, and, when colourizing, the chroma.
Predicting a residual makes "leave undamaged detail alone" the easy answer.

Sized for ~40 minutes of training on one CPU thread and a fast forward on
two cores: the input is folded 2x2 into channels (pixel unshuffle), three
levels (1/2, 1/4, 1/8) with a pooled global branch at the bottom (fading and
casts are whole-photo properties), and the output is unfolded again. Full-
resolution detail is never the network's job: the composer
(`services.generator.compose`) transfers it from the photo itself.
H and W must be multiples of `planes.MULTIPLE`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from services.generator.planes import CHANNELS, CONDITIONS, NOISE_CHANNELS

WIDTHS = (32, 48, 64)


def _conv(inputs: int, outputs: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=dilation, dilation=dilation),
                         nn.LeakyReLU(0.1, inplace=True))


class RestorationNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = WIDTHS) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.unshuffle = nn.PixelUnshuffle(2)
        self.enc1 = nn.Sequential(_conv(CHANNELS * 4, w1), _conv(w1, w1))
        self.enc2 = nn.Sequential(nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                  _conv(w2, w2))
        self.enc3 = nn.Sequential(nn.Conv2d(w2, w3, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                  _conv(w3, w3), _conv(w3, w3, dilation=2))
        self.global_branch = nn.Sequential(nn.Linear(w3, w3), nn.LeakyReLU(0.1, inplace=True), nn.Linear(w3, w3))
        self.dec2 = nn.Sequential(_conv(w3 + w2, w2), _conv(w2, w2))
        self.dec1 = nn.Sequential(_conv(w2 + w1, w1), _conv(w1, w1))
        self.head = nn.Conv2d(w1, 3 * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x CHANNELS x H x W -> N x 3 x H x W restored normalised Lab."""
        e1 = self.enc1(self.unshuffle(x))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e3 = e3 + self.global_branch(e3.mean(dim=(2, 3)))[:, :, None, None]
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear"), e1], 1))
        return x[:, :3] + self.shuffle(self.head(d1))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


#: The planes before gender and age were conditions: photo, masks and colourize flag (kept in place), then the noise.
_KEPT_PLANES = CONDITIONS.start + 1
_UNCONDITIONED_PLANES = _KEPT_PLANES + NOISE_CHANNELS


def with_gender_and_age_inputs(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state from before the gender and age planes, rearranged for today's input, computing the same.

    The first convolution sees the planes folded 2x2 (plane c -> channels
    4c..4c+3), so the noise planes' weights move up by the three new planes
    and the new planes start with zero weights: the network begins exactly
    where the committed one was and learns only what the conditions add.
    """
    key = "enc1.0.0.weight"
    weight = state[key]
    if weight.shape[1] == CHANNELS * 4:
        return state
    if weight.shape[1] != _UNCONDITIONED_PLANES * 4:
        raise ValueError(f"{key} has {weight.shape[1]} input channels; expected {_UNCONDITIONED_PLANES * 4}")
    kept = _KEPT_PLANES * 4
    widened = torch.zeros(weight.shape[0], CHANNELS * 4, *weight.shape[2:], dtype=weight.dtype)
    widened[:, :kept] = weight[:, :kept]
    widened[:, -NOISE_CHANNELS * 4:] = weight[:, kept:]
    return {**state, key: widened}
