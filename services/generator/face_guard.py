"""A face's own texture, kept: whatever a generator did to tone and colour, the fine lightness detail of the
face is the photo's.

Why: the network works at a working resolution and its guided composition
can still soften or shift the fine structure of eyes, nose and mouth, the
detail identity lives in (#13: identity fell to 0.0 on held-out faces). The
photo's own detail, with only its damage filled (inpainted at full resolution),
is the safest detail there is. So inside each face (its box grown by
`MARGIN`, feathered), the candidate keeps its low frequencies (tone, cast,
colour, large fills) and takes the high frequencies of the filled photo;
outside faces nothing changes. A candidate whose face still fails the
identity check is refilled: its faces' lightness is the filled photo's
whole, so it returns the person, repaired, rather than someone else.
"""

from __future__ import annotations

import cv2
import numpy as np
from revive.v1 import common_pb2

from services.generator.planes import LAB_SCALE, lab_to_rgb, rgb_to_lab

#: The face box is grown by this share of its size on every side before the texture is kept.
MARGIN = 0.15
#: Detail scale: frequencies above a Gaussian of this share of the face width are the photo's.
DETAIL = 1 / 48
#: Lightness change (CIELAB L units) below which a pixel is left as the candidate had it.
MIN_SHIFT = 0.5


class FaceGuard:
    """What protects the faces of one request's candidates: the photo with only its damage filled (made once)
    and its faces."""

    def __init__(self, filled: np.ndarray, faces: list[common_pb2.Face]) -> None:
        self.filled, self.faces = filled, faces

    def keep_texture(self, candidate: np.ndarray) -> np.ndarray:
        """Inside each face the candidate keeps its tone and colour and takes the filled photo's fine detail."""
        return self._blend(candidate, keep_tone=True)

    def refill(self, candidate: np.ndarray) -> np.ndarray:
        """For a candidate whose face no longer passes as the person: the faces' lightness taken whole from
        the filled photo (the candidate's colour stays), so what is returned is the person, only repaired."""
        return self._blend(candidate, keep_tone=False)

    def _blend(self, candidate: np.ndarray, keep_tone: bool) -> np.ndarray:
        out = candidate
        for window, sigma in face_windows(self.faces, *candidate.shape[:2]):
            mine, theirs = rgb_to_lab(out[window]), rgb_to_lab(self.filled[window])
            weight = feather(*mine.shape[:2])
            wanted = theirs[..., 0]
            if keep_tone:
                wanted = mine[..., 0] - detail(mine[..., 0], sigma) + detail(theirs[..., 0], sigma)
            shift = weight * (wanted - mine[..., 0])
            mine[..., 0] += shift
            if out is candidate:
                out = candidate.copy()
            # Only pixels whose lightness really moves are rewritten: a Lab round trip of the rest would only
            # add rounding noise (and make the candidate depend on pixels nearby that it should not).
            moved = np.abs(shift) * LAB_SCALE[0] >= MIN_SHIFT
            out[window] = np.where(moved[..., None], lab_to_rgb(mine), out[window])
        return out


def face_windows(faces: list[common_pb2.Face], height: int, width: int) -> list[tuple[tuple[slice, slice], float]]:
    """Each face's box grown by MARGIN, clipped to the photo, and its detail scale; faces under 8 px skipped."""
    windows = []
    for face in faces:
        box = face.box
        grow_x, grow_y = box.width * MARGIN, box.height * MARGIN
        top, bottom = max(0, int(box.y - grow_y)), min(height, int(box.y + box.height + grow_y) + 1)
        left, right = max(0, int(box.x - grow_x)), min(width, int(box.x + box.width + grow_x) + 1)
        if bottom - top >= 8 and right - left >= 8:
            windows.append(((slice(top, bottom), slice(left, right)), max(0.8, box.width * DETAIL)))
    return windows


def detail(lightness: np.ndarray, sigma: float) -> np.ndarray:
    return lightness - cv2.GaussianBlur(lightness, (0, 0), sigma)


def feather(height: int, width: int) -> np.ndarray:
    """1 in the middle of the window, falling linearly to 0 at its edges over a fifth of each side."""
    return np.outer(_ramp(height), _ramp(width)).astype(np.float32)


def _ramp(length: int) -> np.ndarray:
    steps = np.minimum(np.arange(length), np.arange(length)[::-1])
    return np.clip(steps / max(1.0, 0.2 * length), 0.0, 1.0)

