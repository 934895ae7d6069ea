"""The edge decoder: every photo mode becomes clean RGB, every bad file a clear error."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gateway.decoding import decode_photo
from services.common.errors import InvalidInput
from tests.photos import encode, portrait


def save(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge image: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


RGB = portrait(64, 48)


@pytest.mark.parametrize(
    "data",
    [
        save(Image.fromarray(RGB).convert("L")),
        save(Image.fromarray(RGB).convert("LA")),
        save(Image.fromarray(RGB).convert("RGBA")),
        save(Image.fromarray(RGB).convert("P")),
        save(Image.fromarray(RGB).convert("CMYK"), "JPEG"),
        save(Image.fromarray(RGB).convert("CMYK"), "TIFF"),
        save(Image.fromarray((RGB[..., 0].astype(np.uint16) * 257)).convert("I;16")),
        encode(RGB, "WEBP", lossless=True),
        encode(RGB, "BMP"),
        encode(RGB, "JPEG", quality=95),
    ],
    ids=["L", "LA", "RGBA", "P", "CMYK-jpeg", "CMYK-tiff", "16-bit", "webp", "bmp", "jpeg"],
)
def test_every_mode_becomes_rgb_of_the_same_size(data):
    pixels = decode_photo(data)
    assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8
    # Content survives the conversion (not a blank or garbled frame).
    assert np.corrcoef(pixels.mean(axis=2).ravel(), RGB.mean(axis=2).ravel())[0, 1] > 0.8  # P: a 216-colour web palette


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    pixels = decode_photo(save(Image.fromarray(ramp)))
    assert pixels[..., 0].min() == 0 and pixels[..., 0].max() == 255


def test_transparency_is_composited_on_paper_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    assert (decode_photo(save(Image.fromarray(rgba, "RGBA"))) == 255).all()


def test_exif_rotation_is_applied():
    image = Image.fromarray(portrait(64, 48))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    pixels = decode_photo(save(image, "JPEG", exif=exif.tobytes()))
    assert pixels.shape == (64, 48, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text and not a photo", "not an image"),
        (encode(RGB, "JPEG")[:200], "truncated"),
        (encode(RGB, "PNG")[:-40], "truncated"),
        (png_header_only(5000, 300), "at most 4096"),
        (png_header_only(100_000, 100_000), "4096"),
    ],
    ids=["empty", "text", "truncated-jpeg", "truncated-png", "side-over-4096", "bomb"],
)
def test_bad_files_are_refused_with_a_reason(data, message):
    with pytest.raises(InvalidInput) as error:
        decode_photo(data)
    assert message in str(error.value)
