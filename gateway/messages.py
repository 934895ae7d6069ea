"""Upstream requests serialised once per photo, however many calls carry it.

Every service request holds the photo as field 1 (`image`). Building a
message per seed would copy a 4096x4096 photo (48 MB) into each, and gRPC
would serialise each again; instead the photo is serialised once and each
request is that field's bytes followed by the rest of the message. Protobuf
parses concatenated encodings as one message (repeated fields append, so a
seed appended to the shared part is that call's only seed).

Large photos travel PNG-encoded. Every copy of a request's bytes (joining
the parts, gRPC taking the message) holds the interpreter lock for its whole
length, about 1 ms per MB here: 48 MB of RAW pixels stalls the gateway's
event loop for ~45 ms per copy and per call. A fast PNG (zlib level 1, RLE)
halves a grainy 4096x4096 scan and shrinks a clean one far more, for one
encode per photo at the gateway (the encoder releases the lock) and a decode
per call at the service.
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import Message
from revive.v1 import common_pb2, detector_pb2, generator_pb2, upscaler_pb2

from services.common.imaging import PNG, RAW, encode_png

#: Wire type 2 (length-delimited) of field 1: the `image` of every service request.
_IMAGE_TAG = bytes([1 << 3 | 2])
#: ... and of field 5 of Image: its `data`.
_DATA_TAG = bytes([5 << 3 | 2])
#: Photos whose RAW pixels exceed this travel as PNG (GatewayConfig.png_transit_mb sets it).
PNG_ABOVE_BYTES = 16 * 2**20


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def image_field(rgb: np.ndarray, png_above_bytes: int = PNG_ABOVE_BYTES) -> bytes:
    """Field 1 holding the photo as an Image (RAW, or PNG past `png_above_bytes`), built with one copy
    of the pixels: the header is serialised alone and the data appended, as protobuf would lay it out."""
    encoding = PNG if rgb.nbytes > png_above_bytes else RAW
    data = encode_png(rgb) if encoding == PNG else memoryview(np.ascontiguousarray(rgb)).cast("B")
    height, width = rgb.shape[:2]
    header = common_pb2.Image(width=width, height=height, channels=1 if rgb.ndim == 2 else rgb.shape[2],
                              encoding=encoding).SerializeToString()
    size = _varint(len(data))
    image_length = len(header) + len(_DATA_TAG) + len(size) + len(data)
    return b"".join((_IMAGE_TAG, _varint(image_length), header, _DATA_TAG, size, data))


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


def upscale_set_request(candidates: list[common_pb2.Image], factor: int) -> bytes:
    return upscaler_pb2.UpscaleSetRequest(images=candidates, factor=factor, output_encoding=PNG).SerializeToString()
