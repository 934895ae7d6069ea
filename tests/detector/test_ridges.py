"""The detector's fixed ridge input: a crack's line strength measured against where it runs, so a faint crack
over flat skin stands out as plainly as a white one over a dark coat."""

from __future__ import annotations

import torch

from training.detector.model import DamageUNet, RidgeFeatures, load_compatible

#: RidgeFeatures planes: per scale (1 px, 2 px), bright then dark.
BRIGHT_FINE, DARK_FINE = 0, 1


def ridges_of(luma: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return RidgeFeatures()(luma.expand(1, 3, -1, -1).contiguous())[0]


def test_a_faint_crack_on_flat_skin_is_as_plain_as_a_strong_one_on_a_textured_coat():
    generator = torch.Generator().manual_seed(0)
    skin = torch.full((64, 64), 0.8)
    skin[:, 32] += 0.08  # a tenth brighter: barely there in the colour
    coat = 0.15 + 0.08 * torch.rand((64, 64), generator=generator)
    coat[:, 32] = 0.9  # a white crack over a dark knit
    faint, strong = ridges_of(skin)[BRIGHT_FINE, 8:56, 32], ridges_of(coat)[BRIGHT_FINE, 8:56, 32]
    assert faint.mean() > 0.5 and strong.mean() > 0.5
    assert abs(float(faint.mean() - strong.mean())) < 0.3


def test_polarity_and_quiet_ground():
    """A dark line answers in the dark plane, not the bright one; a smooth gradient answers in neither, and a
    flat tile's edges (mirrored, not zero-padded) stay quiet."""
    luma = torch.full((64, 64), 0.6)
    luma[20, :] = 0.3
    planes = ridges_of(luma)
    assert planes[DARK_FINE, 20, 8:56].min() > 0.5
    assert planes[BRIGHT_FINE, 20, 8:56].max() < 0.05
    gradient = torch.linspace(0.2, 0.8, 64).expand(64, 64)
    assert ridges_of(gradient)[:, 8:56, 8:56].max() < 0.05  # mirrored, a slope's edge is a fold
    assert ridges_of(torch.full((64, 64), 0.5)).max() < 1e-3


def test_weights_from_before_the_ridge_input_continue_unchanged():
    """A colour-only first convolution is widened with zeros: the ridge planes start without influence, and the
    network answers as the one it was trained as."""
    model = DamageUNet().eval()
    state = model.state_dict()
    colour_only = dict(state)
    first = state["encoders.0.0.weight"]
    colour_only["encoders.0.0.weight"] = torch.randn(first.shape[0], 12, 3, 3)
    widened = DamageUNet().eval()
    load_compatible(widened, colour_only)
    weight = widened.state_dict()["encoders.0.0.weight"]
    assert torch.equal(weight[:, :12], colour_only["encoders.0.0.weight"])
    assert not weight[:, 12:].any()
    photo = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = widened(photo)[0]
        widened.ridges.forward = lambda rgb: torch.rand(rgb.shape[0], 4, *rgb.shape[2:])  # other ridge planes
        after = widened(photo)[0]
    assert torch.allclose(before, after)
