"""Pixels survive the trip through an Image message in either encoding."""

from __future__ import annotations

import numpy as np
import pytest

from services.common.imaging import PNG, RAW, from_proto, to_proto


@pytest.mark.parametrize("encoding", [RAW, PNG])
@pytest.mark.parametrize("shape", [(7, 5), (7, 5, 3)])
def test_round_trip_is_lossless(encoding, shape):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    message = to_proto(pixels, encoding)
    assert (message.width, message.height) == (5, 7)
    assert np.array_equal(from_proto(message), pixels)


def test_raw_is_a_plain_copy_and_png_is_smaller_on_smooth_images():
    smooth = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    assert len(to_proto(smooth, RAW).data) == smooth.size
    assert len(to_proto(smooth, PNG).data) < smooth.size / 4
