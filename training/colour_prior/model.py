"""SceneColourNet: the colour a grey scene most plausibly had, as a distribution over CIELAB ab bins.

Why a distribution and not a regression: a network trained to regress ab
learns the mean colour of everything that looks alike in grey, and the mean
of green grass, blue water and red brick is brown (the cast #14 was filed
about). Classifying into ab bins, with rare colours weighted up (Zhang, Isola
and Efros 2016, "Colorful Image Colorization"), keeps the modes apart; the
served colour is the distribution's annealed mean (temperature below 1
sharpens it towards its mode without the patchiness of the mode itself), and
the distribution's spread says how sure it is, so the colourizer can keep its
palettes where the network only guesses (a wall could be any colour).

Input: services/vision/scene_colour.py's network_planes (lightness, and each
row's height in the photo). Output at a quarter of the input's size.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: Spacing of the ab grid (CIELAB units) and its reach.
BIN_STEP = 10.0
BIN_REACH = 110.0
#: Annealed-mean temperature (Zhang et al. use 0.38).
TEMPERATURE = 0.38
#: A tilt only chooses among bins at least this share as probable as the most probable one: the network's
#: long tails hold blue foliage and purple skies, which a tilt would otherwise pull out.
PLAUSIBLE = 0.2


def ab_bins() -> np.ndarray:
    """Q x 2 centres of the grid cells that sRGB colours reach (about 260 of the 529)."""
    levels = np.arange(0, 256, 4, dtype=np.float32) / 255.0
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(1, -1, 3)
    ab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)[0, :, 1:]
    cells = np.unique(np.round(ab / BIN_STEP).astype(np.int32), axis=0)
    cells = cells[np.all(np.abs(cells * BIN_STEP) <= BIN_REACH, axis=1)]
    return (cells * BIN_STEP).astype(np.float32)


def block(channels_in: int, channels_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))


class SceneColourNet(nn.Module):
    """Encoder to 1/8 with dilated context and a whole-photo summary, decoder back to 1/4: ab-bin logits."""

    def __init__(self, bins: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(block(2, w), block(w, w + w // 2, stride=2))
        self.down4 = nn.Sequential(block(w + w // 2, 3 * w, stride=2), block(3 * w, 3 * w))
        self.down8 = nn.Sequential(block(3 * w, 5 * w, stride=2), block(5 * w, 5 * w, dilation=2),
                                   block(5 * w, 5 * w, dilation=4), block(5 * w, 5 * w, dilation=8))
        # The photo as a whole (indoors or out, a portrait or a landscape) shifts every pixel's odds.
        self.summary = nn.Sequential(nn.Linear(5 * w, 5 * w), nn.ReLU(inplace=True))
        self.decode = nn.Sequential(block(8 * w, 4 * w), block(4 * w, 4 * w))
        self.classify = nn.Conv2d(4 * w, bins, 1)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        quarter = self.down4(self.stem(planes))
        eighth = self.down8(quarter)
        eighth = eighth + self.summary(eighth.mean(dim=(2, 3)))[:, :, None, None]
        up = F.interpolate(eighth, size=quarter.shape[2:], mode="bilinear", align_corners=False)
        return self.classify(self.decode(torch.cat([up, quarter], dim=1)))


class AnnealedMean(nn.Module):
    """What is served: (logits, tilt) -> (a, b, spread), the annealed mean and how far the distribution strays
    from it.

    `tilt` (N x 2, nats per ab unit) tilts each distribution towards a direction in ab before it is decoded:
    p'(q) ~ p(q) exp(tilt . ab_q) over the bins at least PLAUSIBLE as probable as the mode, an exponential
    tilt, which moves the mean by about the distribution's covariance times the tilt. Where the network is
    sure (a sky it knows is blue) the colour barely moves; where grass and brick are both plausible it moves
    to the other answer. One tilt per candidate gives candidates that differ where a person would accept
    either; a zero tilt is the best guess.
    The spread is the untilted distribution's, so how much the colour counts does not depend on the candidate.
    Decoding lives in the exported graph, so the service never needs the bins."""

    def __init__(self, net: nn.Module, bins: np.ndarray, temperature: float = TEMPERATURE) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("bins", torch.from_numpy(bins).t().contiguous().view(1, 2, -1, 1, 1))
        self.temperature = temperature

    def forward(self, planes: torch.Tensor, tilt: torch.Tensor) -> torch.Tensor:
        logits = self.net(planes)
        plausible = logits >= logits.amax(dim=1, keepdim=True) + float(np.log(PLAUSIBLE))
        tilted = logits + (tilt[:, :, None, None, None] * self.bins).sum(dim=1)
        mean = self.annealed_mean(torch.where(plausible, tilted, tilted - 1e4))  # N x 2 x h x w
        # Spread under the plain distribution around the untilted mean: large where grass and brick are both
        # plausible.
        plain = torch.softmax(logits, dim=1).unsqueeze(1)
        spread = ((plain * (self.bins - self.annealed_mean(logits).unsqueeze(2)) ** 2).sum(dim=(1, 2)) + 1e-6).sqrt()
        return torch.cat([mean, spread.unsqueeze(1)], dim=1)

    def annealed_mean(self, logits: torch.Tensor) -> torch.Tensor:
        sharp = torch.softmax(logits / self.temperature, dim=1).unsqueeze(1)  # N x 1 x Q x h x w
        return (sharp * self.bins).sum(dim=2)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
