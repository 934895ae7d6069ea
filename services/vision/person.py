"""PersonSegmenter: each pixel's probability of showing a person, from MediaPipe's selfie segmentation network.

The network (converted by `convert.py`; origin, licence and checks in
models/person/manifest.json) sees the whole photo stretched to 256x256 and
counts hair, face, body and clothes as person. Pre- and post-processing follow
MediaPipe's CPU graph, so the mask is mediapipe's own (`reference.py` measures
how close): ImageToTensorCalculator stretches the photo onto the tensor with a
bilinear warp of the uint8 pixels (`stretch`), then scales them to 0..1;
TensorsToSegmentationCalculator resizes the 256x256 probabilities back
bilinearly. MediaPipe made the model for people near the camera (selfies,
video calls); small figures in a wide shot are found less reliably, so
`around_faces` also shows it a crop framed on each face found.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.common.resize import upsample_rows
from services.common.runtime import OnnxModel, RuntimeOptions

MODEL_FILE = Path("person") / "selfie_segmentation.onnx"
#: The network's input side (convert.py keeps the .tflite's 256x256).
SIDE = 256
#: OpenCV 4's warpPerspective (inside MediaPipe) walks the output in blocks of BLOCK columns and
#: puts source positions on a grid of 1/SUBPIXEL pixel.
BLOCK, SUBPIXEL = 64, 32
#: A face's person crop (person_frame), in face widths either side of its centre and face heights above and below
#: it: a head and shoulders and the body down to the knees of a sitter, as a selfie frames them.
FRAME_SIDES, FRAME_ABOVE, FRAME_BELOW = 2.5, 0.75, 5.0
#: The tensor's corners in the order MediaPipe lists them (cv::boxPoints of the photo's rectangle).
TENSOR_CORNERS = np.array([[0, SIDE], [0, 0], [SIDE, 0], [SIDE, SIDE]], np.float32)


def source_positions(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo row and column each tensor row and column samples, in 1/SUBPIXEL pixels, as OpenCV 4 rounds them.

    MediaPipe maps the photo's corners onto the tensor's; OpenCV inverts that
    matrix and rounds the positions it gives to the nearest grid point (ties to
    even). Ties are common (a 1350-row photo: tensor row 2 samples photo row
    10.546875 = 337.5 / 32) and the inverted matrix is a few ulps off, so the
    doubles are formed from the same matrix, in OpenCV's order.
    """
    photo_corners = np.array([[0, height], [0, 0], [width, 0], [width, height]], np.float32)
    inverse = cv2.invert(cv2.getPerspectiveTransform(photo_corners, TENSOR_CORNERS))[1]
    scale = SUBPIXEL / inverse[2, 2]
    out = np.arange(SIDE, dtype=np.float64)
    block = out - out % BLOCK  # a column's position is its block's start plus the offset within the block
    rows = np.rint(inverse[1, 1] * out * scale)
    cols = np.rint((inverse[0, 0] * block + inverse[0, 0] * (out - block)) * scale)
    return rows.astype(np.int64), cols.astype(np.int64)


def taps(positions: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two source indices per position along an axis of `size` pixels, and their weights (1/SUBPIXEL)."""
    first, fraction = np.divmod(positions, SUBPIXEL)
    # Past the last pixel the photo is black: such a tap weighs nothing (and reads a pixel that exists).
    first_weight = np.where(first < size, SUBPIXEL - fraction, 0)
    second_weight = np.where(first + 1 < size, fraction, 0)
    return np.minimum(first, size - 1), np.minimum(first + 1, size - 1), first_weight, second_weight


def stretch(rgb: np.ndarray) -> np.ndarray:
    """`rgb` stretched to SIDE x SIDE, pixel for pixel as MediaPipe's ImageToTensorCalculator does on the CPU.

    That is OpenCV 4's warpPerspective (INTER_LINEAR, black border): bilinear
    without antialiasing, at positions rounded to 1/32 pixel, integer weights,
    the result rounded to uint8. The cv2 installed here (5.0) warps a level or
    two apart on a few percent of the pixels, and the network's edges are steep
    enough for that to move the mask by up to 0.17, so the arithmetic is done here.
    """
    rows, cols = source_positions(*rgb.shape[:2])
    row, next_row, row_weight, next_row_weight = taps(rows, rgb.shape[0])
    col, next_col, col_weight, next_col_weight = taps(cols, rgb.shape[1])

    def along_row(photo_rows: np.ndarray) -> np.ndarray:
        pixels = lambda photo_cols: rgb[np.ix_(photo_rows, photo_cols)].astype(np.int32)
        return pixels(col) * col_weight[:, None] + pixels(next_col) * next_col_weight[:, None]

    total = along_row(row) * row_weight[:, None, None] + along_row(next_row) * next_row_weight[:, None, None]
    return ((total + SUBPIXEL**2 // 2) // SUBPIXEL**2).astype(np.uint8)


def network_input(rgb: np.ndarray) -> np.ndarray:
    """`rgb` (H x W x 3 uint8) as the network's 1 x 3 x SIDE x SIDE input: stretched, RGB 0..1 float."""
    return (stretch(rgb).astype(np.float32) / 255.0).transpose(2, 0, 1)[None]


class PersonSegmenter:
    """The selfie segmentation network in an ONNX Runtime session."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        self.model = OnnxModel(path, options, "person_segmentation")
        #: What really runs the network.
        self.provider = self.model.provider

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """SIDE x SIDE float32 0..1: the network's person probability for `rgb` (uint8 RGB), stretched.

        `window` lays it onto any part of the photo; callers that need only
        the heads never build the full-resolution mask (64 MB at 4096x4096).
        """
        (probability,) = self.model.run({self.model.input_names[0]: network_input(rgb)})
        return probability[0, 0]

    def around_faces(self, rgb: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        """SIDE x SIDE like `probability`: the most of the whole photo's and of a crop's around each face
        (`boxes`: float x, y, width, height in `rgb`'s pixels).

        The network was made for one person near the camera: on a group photo it finds the nearest sitters and
        loses the rest (three of five women on the tuning stairs), whose arms then took the wall's colour. A
        crop framed on each found face, as a selfie would frame it, shows it one person near the camera again.
        """
        combined = self.probability(rgb)
        height, width = rgb.shape[:2]
        # The photo's grid cell centres, in photo pixels, as `whole` lays the grid onto the photo.
        grid_rows = (np.arange(SIDE) + 0.5) * (height / SIDE)
        grid_cols = (np.arange(SIDE) + 0.5) * (width / SIDE)
        for box in boxes:
            top, bottom, left, right = person_frame(box, height, width)
            if bottom - top < 8 or right - left < 8 or (top, bottom, left, right) == (0, height, 0, width):
                continue  # too small to say anything, or the whole photo again
            crop = self.probability(np.ascontiguousarray(rgb[top:bottom, left:right]))
            # Each grid cell inside the crop reads the crop's grid bilinearly; cells outside it keep the photo's.
            rows = (grid_rows - top) * (SIDE / (bottom - top)) - 0.5
            cols = (grid_cols - left) * (SIDE / (right - left)) - 0.5
            inside = ((grid_rows >= top) & (grid_rows < bottom))[:, None] & ((grid_cols >= left) & (grid_cols < right))
            map_cols, map_rows = np.meshgrid(cols.astype(np.float32), rows.astype(np.float32))
            seen = cv2.remap(crop, map_cols, map_rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            combined = np.where(inside, np.maximum(combined, seen), combined)
        return combined

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """H x W float32 0..1: the probability that each pixel of `rgb` (uint8 RGB) shows a person."""
        return whole(self.probability(rgb), rgb.shape[:2])


def person_frame(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the crop that frames the person of a face `box` (x, y, width, height) in a photo
    of `height` x `width`, as a selfie does: FRAME_SIDES face widths either side of the face's centre, FRAME_ABOVE
    face heights above its top and FRAME_BELOW below it, cut to the photo."""
    x, y, face_width, face_height = (float(value) for value in box)
    centre = x + face_width / 2
    top = max(0, int(y - FRAME_ABOVE * face_height))
    bottom = min(height, int(np.ceil(y + (1 + FRAME_BELOW) * face_height)))
    left = max(0, int(centre - FRAME_SIDES * face_width))
    right = min(width, int(np.ceil(centre + FRAME_SIDES * face_width)))
    return top, bottom, left, right


def whole(probability: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`probability` (`PersonSegmenter.probability`) over the whole of a photo of `size` (H, W)."""
    return window(probability, size, slice(0, size[0]), slice(0, size[1]))


def window(probability: np.ndarray, size: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    """`probability` (`PersonSegmenter.probability`) over rows x cols of a photo of `size` (H, W).

    MediaPipe resizes the map back bilinearly to the photo's size; this is
    that resize, computed for the window's rows only (as the composer does its strips).
    """
    return upsample_rows(probability[..., None], rows, size)[:, cols, 0]
