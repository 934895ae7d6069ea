"""The crack channel's negatives on the photo's own edges weigh more in training, and nothing else does."""

from __future__ import annotations

import torch

from training.detector.train import edge_weights, loss_fn


def photo_with_an_edge_and_a_crack() -> tuple[torch.Tensor, torch.Tensor]:
    """One 64x64 crop: dark left half, light right half (an edge down column 32), a crack along row 10."""
    images = torch.full((1, 3, 64, 64), 0.2)
    images[..., 32:] = 0.8
    images[:, :, 10, :] = 0.95
    masks = torch.zeros(1, 4, 64, 64)
    masks[:, 0, 10, :] = 1.0
    return images, masks


def test_edges_weigh_more_on_the_crack_channel_only_and_not_beside_damage() -> None:
    images, masks = photo_with_an_edge_and_a_crack()
    weights = edge_weights(images, masks, strength=3.0)
    assert weights[0, 0, 40, 31] > 3.0 and weights[0, 0, 40, 32] > 3.0  # the photo's edge
    assert weights[0, 0, 40, 10] == 1.0 and weights[0, 0, 40, 50] == 1.0  # flat ground
    assert (weights[0, 0, 8:13, :] == 1.0).all()  # the crack and its own edges
    assert (weights[0, 1:] == 1.0).all()  # tears, stains and fading as before


def test_a_false_crack_on_an_edge_costs_more_with_edge_negatives() -> None:
    images, masks = photo_with_an_edge_and_a_crack()
    logits = torch.full((1, 4, 64, 64), -4.0)
    logits[:, 0, 10, :] = 4.0  # the crack found
    on_edge = logits.clone()
    on_edge[:, 0, :, 31:33] = 4.0  # and the edge flagged too
    scores, target_scores = torch.zeros(1, 2), torch.zeros(1, 2)
    plain = loss_fn(on_edge, scores, masks, target_scores) - loss_fn(logits, scores, masks, target_scores)
    weights = edge_weights(images, masks, strength=3.0)
    weighted = (loss_fn(on_edge, scores, masks, target_scores, weights)
                - loss_fn(logits, scores, masks, target_scores, weights))
    assert weighted > 1.5 * plain > 0  # Dice, unweighted, is part of both
