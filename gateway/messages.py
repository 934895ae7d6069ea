"""Upstream requests serialised once per photo, however many calls carry it.

Every service request holds the photo as field 1 (`image`). Building a
message per seed would copy a 4096x4096 photo (48 MB) into each, and gRPC
would serialise each again; instead the photo is serialised once and each
request is that field's bytes followed by the rest of the message. Protobuf
parses concatenated encodings as one message (repeated fields append, so a
seed appended to the shared part is that call's only seed).
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import Message
from revive.v1 import common_pb2, detector_pb2, generator_pb2, upscaler_pb2

from services.common.imaging import PNG, to_proto

#: Wire type 2 (length-delimited) of field 1: the `image` of every service request.
_IMAGE_TAG = bytes([1 << 3 | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def image_field(rgb: np.ndarray) -> bytes:
    """Field 1 holding the photo as a RAW Image, encoded once."""
    image = to_proto(rgb).SerializeToString()
    return b"".join((_IMAGE_TAG, _varint(len(image)), image))


def _with_image(image: bytes, rest: Message) -> bytes:
    return b"".join((image, rest.SerializeToString()))


def detect_request(image: bytes) -> bytes:
    return _with_image(image, detector_pb2.DetectRequest(analyze_faces=True))


def generate_base(image: bytes, report: common_pb2.DamageReport, options: common_pb2.RestoreOptions) -> bytes:
    """Everything of a GenerateRequest but its seed; candidates come back as PNG (a third of RAW, or less)."""
    return _with_image(image, generator_pb2.GenerateRequest(damage=report, options=options, output_encoding=PNG))


def with_seed(base: bytes, seed: int) -> bytes:
    return base + generator_pb2.GenerateRequest(seeds=[seed]).SerializeToString()


def upscale_request(candidate: common_pb2.Image, factor: int) -> bytes:
    return upscaler_pb2.UpscaleRequest(image=candidate, factor=factor, output_encoding=PNG).SerializeToString()
