"""DamageUNet: a small U-Net for per-pixel damage types plus whole-photo scores.

Sized for the budget that matters, a 4096x4096 scan in under 10 s on two CPU
cores: the input is folded 2x2 into channels (pixel unshuffle) so the U-Net
runs at half resolution, and the output is unfolded again (pixel shuffle), so
1-pixel scratches keep full-resolution masks at a quarter of the cost.

Outputs (one forward pass):
- `masks`: N x 4 x H x W logits, one channel per DamageType in
  DAMAGE_TYPES order (SCRATCH, TEAR, STAIN, FADING), multi-label;
- `scores`: N x 2 logits, whole-photo fading and black-and-white, from the
  pooled bottleneck.
H and W must be multiples of `MULTIPLE`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Input sides must be multiples of this (pixel unshuffle x 4 poolings).
MULTIPLE = 32
#: Mask channels, in DAMAGE_TYPES order.
MASK_CHANNELS = 4
#: Score channels: fading, grayscale.
SCORE_CHANNELS = 2
#: Channels per level, half resolution down to 1/32.
WIDTHS = (24, 32, 64, 96, 128)


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class DamageUNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.encoders = nn.ModuleList()
        channels = 3 * 4
        for width in widths:
            self.encoders.append(_block(channels, width))
            channels = width
        self.decoders = nn.ModuleList(
            _block(deep + skip, skip) for deep, skip in zip(widths[:0:-1], widths[-2::-1])
        )
        self.mask_head = nn.Conv2d(widths[0], MASK_CHANNELS * 4, 1)
        self.shuffle = nn.PixelShuffle(2)
        self.score_head = nn.Sequential(nn.Linear(widths[-1] * 2, 64), nn.ReLU(inplace=True),
                                        nn.Linear(64, SCORE_CHANNELS))
        # Normalisation lives in the graph so every caller feeds plain 0..1 RGB.
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`rgb`: N x 3 x H x W floats in 0..1."""
        x = self.unshuffle((rgb - self.mean) / self.std)
        skips = []
        for index, encoder in enumerate(self.encoders):
            if index:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        pooled = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        scores = self.score_head(pooled)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = decoder(torch.cat([x, skip], dim=1))
        masks = self.shuffle(self.mask_head(x))
        return masks, scores


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
