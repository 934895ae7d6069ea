"""DamageUNet: a small U-Net for per-pixel damage types plus whole-photo scores.

Sized for the budget that matters, a 4096x4096 scan in under 10 s on two CPU
cores: the input is folded 2x2 into channels (pixel unshuffle) so the U-Net
runs at half resolution, and the output is unfolded again (pixel shuffle), so
1-pixel scratches keep full-resolution masks at a quarter of the cost.

Beside the colour, the U-Net sees fixed multi-scale ridge maps (`RidgeFeatures`)
measured against the local contrast: a faint crack over flat skin, a tenth
brighter than its surroundings, is as plain there as a white crack over a
dark coat, where the colour alone leaves it near the noise.

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
#: Gaussian scales (full-resolution pixels) of the ridge maps: 1-2 px and 3-5 px wide lines.
RIDGE_SCALES = (1.0, 2.0)
#: Scale of the neighbourhood whose contrast a ridge is measured against.
CONTRAST_SIGMA = 6.0
#: Contrast floor (0..1 luma): below it a neighbourhood is flat and its grain is not a ridge.
CONTRAST_FLOOR = 0.02
#: The local contrast is measured on the luma averaged over blocks of this side: it varies slowly.
CONTRAST_BLOCK = 4
#: Second differences d2/dx2, d2/dy2 and d2/dxdy of a smoothed plane (3 x 1 x 3 x 3 conv2d weights).
HESSIAN = torch.tensor([
    [[0.0, 0.0, 0.0], [1.0, -2.0, 1.0], [0.0, 0.0, 0.0]],
    [[0.0, 1.0, 0.0], [0.0, -2.0, 0.0], [0.0, 1.0, 0.0]],
    [[0.25, 0.0, -0.25], [0.0, 0.0, 0.0], [-0.25, 0.0, 0.25]],
]).view(3, 1, 3, 3)
#: Full-resolution input planes: RGB and, per ridge scale, a bright and a dark ridge map.
INPUT_PLANES = 3 + 2 * len(RIDGE_SCALES)


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


def _gaussian(sigma: float) -> torch.Tensor:
    """A 1-D Gaussian of radius 3 sigma as 1 x 1 x 1 x K conv2d weights (along x; transposed, along y)."""
    radius = max(1, round(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-x**2 / (2 * sigma**2))
    return (g / g.sum()).float().view(1, 1, 1, -1)


def _smoothed(plane: torch.Tensor, kernel: torch.Tensor, margin: int = 0) -> torch.Tensor:
    """`plane` (N x C x H x W, C separate planes) blurred by the separable `kernel`, mirrored at the borders
    (a tile's edge is not a line) and `margin` pixels larger on every side."""
    radius = kernel.shape[-1] // 2 + margin
    padded = F.pad(plane, (radius, radius, radius, radius), mode="reflect")
    channels = plane.shape[1]
    rows = F.conv2d(padded, kernel.expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.transpose(-1, -2).expand(channels, 1, -1, 1), groups=channels)


class RidgeFeatures(nn.Module):
    """Bright and dark line strength per scale, over the local contrast, squashed to 0..1.

    A line's strength is the scale-normalised largest curvature across it: the
    eigenvalues of sigma^2 times the Hessian of the luma (Lindeberg), taken as
    second differences of the Gaussian-smoothed luma. Divided by the
    neighbourhood's standard deviation, it no longer depends on how strong the
    crack is, only on how much it stands out where it runs. Fixed weights:
    nothing here trains, and the exported graph computes it on any tile
    (sides multiples of CONTRAST_BLOCK, at least 4 blocks).
    """

    def __init__(self, scales: tuple[float, ...] = RIDGE_SCALES) -> None:
        super().__init__()
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("hessian", HESSIAN, persistent=False)
        for index, sigma in enumerate(scales):
            self.register_buffer(f"smooth{index}", _gaussian(sigma), persistent=False)
        self.register_buffer("window", _gaussian(CONTRAST_SIGMA / CONTRAST_BLOCK), persistent=False)
        self.scales = scales

    def _spread(self, luma: torch.Tensor) -> torch.Tensor:
        """The luma's local standard deviation, floored, at full resolution."""
        blocks = F.avg_pool2d(torch.cat([luma, luma * luma], dim=1), CONTRAST_BLOCK)
        mean, square = _smoothed(blocks, self.window).split(1, dim=1)
        variance = F.interpolate((square - mean * mean).clamp(min=0), scale_factor=float(CONTRAST_BLOCK),
                                 mode="bilinear", align_corners=False)
        return torch.sqrt(variance + CONTRAST_FLOOR**2)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        luma = (rgb.float() * self.luma).sum(dim=1, keepdim=True)
        spread = self._spread(luma)
        planes = []
        for index, sigma in enumerate(self.scales):
            xx, yy, xy = F.conv2d(_smoothed(luma, getattr(self, f"smooth{index}"), margin=1), self.hessian).split(
                1, dim=1)
            half_sum, half_gap = (xx + yy) / 2, torch.sqrt(((xx - yy) / 2) ** 2 + xy * xy)
            scale = sigma * sigma / spread
            # The most negative curvature is a bright line's, the most positive a dark one's.
            planes += [torch.tanh(F.relu(half_gap - half_sum) * scale), torch.tanh(F.relu(half_sum + half_gap) * scale)]
        return torch.cat(planes, dim=1)


class DamageUNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.ridges = RidgeFeatures()
        self.unshuffle = nn.PixelUnshuffle(2)
        self.encoders = nn.ModuleList()
        channels = INPUT_PLANES * 4
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
        with torch.autocast(rgb.device.type, enabled=False):  # curvatures of a tenth of a grey level need float32
            ridges = self.ridges(rgb)
        x = self.unshuffle(torch.cat([(rgb - self.mean) / self.std, ridges.to(rgb.dtype)], dim=1))
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


def load_compatible(model: DamageUNet, state: dict[str, torch.Tensor]) -> None:
    """Loads `state` into `model`; weights from before the ridge input (a first convolution over the colour
    planes only) get zero weights for the ridge planes, so training continues exactly where they left off."""
    key = "encoders.0.0.weight"
    wanted = model.state_dict()[key]
    given = state[key]
    if given.shape[1] < wanted.shape[1]:
        state = dict(state)
        widened = torch.zeros_like(wanted)
        widened[:, :given.shape[1]] = given
        state[key] = widened
    model.load_state_dict(state)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
