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
CHANNELS = 48


class FidelitySR(nn.Module):
    def __init__(self, scale: int, channels: int = CHANNELS, blocks: int = BLOCKS) -> None:
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

    @classmethod
    def from_state(cls, scale: int, state: dict[str, torch.Tensor]) -> FidelitySR:
        """The network a saved state_dict came from, whatever its width and depth, with its weights."""
        model = cls(scale, channels=state["head.weight"].shape[0], blocks=block_count(state))
        model.load_state_dict(state)
        return model

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.compose(rgb, self.correction(rgb))

    def correction(self, rgb: torch.Tensor) -> torch.Tensor:
        """What the network adds to bicubic: the only part training may run in bfloat16."""
        features = self.head(rgb - 0.5)
        return self.tail(features + self.body(features))

    def compose(self, rgb: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
        """Bicubic plus the correction, in float32: the skip carries the whole image, and bfloat16's
        8-bit mantissa would round it by up to a level."""
        return torch.clamp(self.bicubic(rgb.float()) + correction.float(), 0.0, 1.0)


def block_count(state: dict[str, torch.Tensor]) -> int:
    """How many residual blocks a saved FidelitySR holds, so loaders rebuild the same network."""
    return sum(1 for key in state if key.startswith("body.") and key.endswith(".body.0.weight"))


def grow(model: FidelitySR, state: dict[str, torch.Tensor]) -> None:
    """Load a smaller network's weights into `model` so that it computes exactly the same function.

    Deeper: the extra residual blocks go after the old ones with their last
    convolution zeroed, so each starts as the identity. Wider: the extra
    feature channels start from the usual random initialisation, but every
    weight from a new channel into an old one (or into the tail) is zero, so
    the old channels and the output are untouched until training finds a use
    for the new ones. A bigger network thus continues from a trained one's
    quality instead of from bicubic: more capacity for the same CPU hours.
    """
    old_blocks, new_blocks = block_count(state), len(model.body) - 1
    old_channels, new_channels = state["head.weight"].shape[0], model.head.out_channels
    if old_blocks > new_blocks or old_channels > new_channels:
        raise ValueError(f"cannot shrink {old_blocks} blocks x {old_channels} channels "
                         f"to {new_blocks} x {new_channels}")
    last = f"body.{old_blocks}."
    renamed = {(f"body.{new_blocks}." + key[len(last):] if key.startswith(last) else key): value
               for key, value in state.items()}
    grown = {}
    for key, fresh in model.state_dict().items():
        value = fresh.detach().clone()
        if key in renamed:
            old = renamed[key]
            if value.ndim == 4:  # out x in x kh x kw: old block kept, new inputs cut off from old outputs
                value[:old.shape[0], old.shape[1]:] = 0
                value[:old.shape[0], :old.shape[1]] = old
            else:
                value[:old.shape[0]] = old
        elif key.endswith((".body.2.weight", ".body.2.bias")):
            value.zero_()  # a new block's last convolution: the block starts as the identity
        grown[key] = value
    model.load_state_dict(grown)
