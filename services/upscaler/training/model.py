"""FidelitySR: a small residual super-resolution network trained by Revive for PSNR.

Features are computed at the input resolution (cheap: a x4 output costs the
network 1/16 of its pixels), a sub-pixel convolution lays them out at the
output resolution, and the network only predicts the correction to bicubic
interpolation (the global skip of VDSR), so it starts from bicubic's answer
and every step of training goes into detail bicubic misses.

Same interface as the converted ESRGAN tiers: N x 3 x H x W RGB in 0..1 in,
N x 3 x sH x sW in 0..1 out, so the esrgan engine serves either.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FidelitySR(nn.Module):
    def __init__(self, scale: int, channels: int = 48, blocks: int = 8) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        # The correction starts at zero: an untrained network is exactly bicubic.
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        features = self.head(rgb - 0.5)
        correction = self.tail(features + self.body(features))
        base = F.interpolate(rgb, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return torch.clamp(base + correction, 0.0, 1.0)
