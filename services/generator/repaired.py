"""What a candidate repaired, per damage type: the masks the user is shown (#13: "the mask returned is the
mask repaired").

The fill replaces more than the detector's masks (they are grown, and the
cracks' rims go with them: services/common/inpainting.py), so the masks shown
are the fill's own region, each pixel given to the kind of damage it was
grown from: the nearest within REACH, tears over scratches over stains where
they meet, as the gateway's overlay paints them.
"""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.common.imaging import to_proto
from services.common.inpainting import BY_EXTENT, GROW, RIM, SPECK_GROW

#: The farthest a fill reaches beyond the detector's mask (full-resolution pixels).
REACH = GROW + SPECK_GROW + RIM


def by_type(repaired: np.ndarray, masks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """`repaired` (HxW uint8, 255 = filled) split by the detector's `masks` (DamageType -> HxW uint8)."""
    filled = repaired >= 128
    owner = np.zeros(repaired.shape, np.uint8)
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * REACH + 1, 2 * REACH + 1))
    present = [kind for kind in BY_EXTENT if kind in masks and (masks[kind] >= 128).any()]
    for kind in present:
        owner[cv2.dilate((masks[kind] >= 128).astype(np.uint8), reach) > 0] = kind
    return {kind: np.where(filled & (owner == kind), 255, 0).astype(np.uint8) for kind in present}


def repaired_masks(repaired: np.ndarray, masks: dict[int, np.ndarray]) -> list[common_pb2.DamageMask]:
    """The DamageMask messages of a candidate: one PNG mask per kind of damage it filled, with its coverage."""
    return [common_pb2.DamageMask(type=kind, coverage=float((mask > 0).mean()), mask=to_proto(mask, common_pb2.Image.PNG))
            for kind, mask in by_type(repaired, masks).items() if mask.any()]
