"""FidelitySR: a small residual super-resolution network trained by Revive for PSNR.

Features are computed at the input resolution (cheap: a x4 output costs the
network 1/16 of its pixels), a sub-pixel convolution lays them out at the
output resolution, and the network only predicts the correction to bicubic
interpolation (the global skip of VDSR), so it starts from bicubic's answer
and every step of training goes into detail bicubic misses.

The bicubic skip is computed as a fixed convolution followed by a pixel
shuffle (BicubicUpsample): the same numbers as torch's bicubic interpolation,
but ONNX Runtime runs a convolution several times faster than its cubic
Resize, which had made the ONNX model slower than torch eager.

Same interface as the converted ESRGAN tiers: N x 3 x H x W RGB in 0..1 in,
N x 3 x sH x sW in 0..1 out, so the esrgan engine serves either.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def cubic_weight(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with torch's a = -0.75."""
    x = abs(distance)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0


def bicubic_taps(scale: int) -> torch.Tensor:
    """scale x 5 weights: for each output phase, the taps on input offsets -2..2 (align_corners=False)."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for phase in range(scale):
        position = (phase + 0.5) / scale - 0.5  # source coordinate relative to input pixel i
        floor = -1 if position < 0 else 0
        t = position - floor
        for k, weight in zip(range(floor - 1, floor + 3), (cubic_weight(1 + t), cubic_weight(t),
                                                           cubic_weight(1 - t), cubic_weight(2 - t))):
            taps[phase, k + 2] = weight
    return taps


class BicubicUpsample(nn.Module):
    """F.interpolate(mode="bicubic", align_corners=False) for an integer factor, as conv + pixel shuffle.

    Borders replicate, as torch clamps the taps to the image.
    """

    def __init__(self, scale: int, channels: int = 3) -> None:
        super().__init__()
        taps = bicubic_taps(scale)
        # (phase_y, phase_x, 5, 5) outer products, one group per colour channel.
        kernel = torch.einsum("ya,xb->yxab", taps, taps).reshape(scale * scale, 1, 5, 5).float()
        self.register_buffer("kernel", kernel.repeat(channels, 1, 1, 1), persistent=False)
        self.scale, self.channels = scale, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.pixel_shuffle(F.conv2d(padded, self.kernel, groups=self.channels), self.scale)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


BLOCKS = 8


class FidelitySR(nn.Module):
    def __init__(self, scale: int, channels: int = 48, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        # The correction starts at zero: an untrained network is exactly bicubic.
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)
        self.bicubic = BicubicUpsample(scale)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        features = self.head(rgb - 0.5)
        correction = self.tail(features + self.body(features))
        return torch.clamp(self.bicubic(rgb) + correction, 0.0, 1.0)


def block_count(state: dict[str, torch.Tensor]) -> int:
    """How many residual blocks a saved FidelitySR holds, so loaders rebuild the same network."""
    return sum(1 for key in state if key.startswith("body.") and key.endswith(".body.0.weight"))


def grow(model: FidelitySR, state: dict[str, torch.Tensor]) -> None:
    """Load a shallower network's weights into `model` so that it computes exactly the same function.

    The extra residual blocks go after the old ones with their last convolution
    zeroed (each starts as the identity), so a deeper network continues from a
    trained one's quality instead of from bicubic: more capacity for the same
    CPU hours.
    """
    old, new = block_count(state), len(model.body) - 1
    if old > new:
        raise ValueError(f"cannot shrink {old} blocks to {new}")
    last = f"body.{old}."
    grown = {(f"body.{new}." + key[len(last):] if key.startswith(last) else key): value for key, value in state.items()}
    for index in range(old, new):
        block = model.body[index].body[2]
        grown[f"body.{index}.body.0.weight"] = model.body[index].body[0].weight.detach()
        grown[f"body.{index}.body.0.bias"] = model.body[index].body[0].bias.detach()
        grown[f"body.{index}.body.2.weight"] = torch.zeros_like(block.weight)
        grown[f"body.{index}.body.2.bias"] = torch.zeros_like(block.bias)
    model.load_state_dict(grown)
