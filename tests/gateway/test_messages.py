"""Upstream requests built once per photo: what the services parse is exactly the photo and the call's seed."""

from __future__ import annotations

import numpy as np
from revive.v1 import common_pb2, generator_pb2

from gateway import messages
from services.common.imaging import PNG, RAW, from_proto


def test_small_photos_travel_raw_large_ones_png_and_both_parse_back_to_the_same_pixels():
    rgb = np.random.default_rng(1).integers(0, 256, (61, 47, 3), dtype=np.uint8)
    grey = rgb[..., 0].copy()
    for pixels in (rgb, grey):
        for limit, encoding in ((pixels.nbytes, RAW), (pixels.nbytes - 1, PNG)):
            request = generator_pb2.GenerateRequest.FromString(messages.with_seed(
                messages.generate_base(messages.image_field(pixels, limit), common_pb2.DamageReport(faces=[]),
                                       common_pb2.RestoreOptions(candidates=2)), 77))
            assert request.image.encoding == encoding
            assert np.array_equal(from_proto(request.image), pixels)
            assert list(request.seeds) == [77] and request.options.candidates == 2
