"""Decode and validate an uploaded photo, once, at the edge.

Everything behind the gateway receives clean HxWx3 uint8 RGB, so every
oddity of real scans is settled here: EXIF orientation, palette, alpha,
16-bit and CMYK files, multi-page TIFFs. The side limit is checked from the
header before any pixel is decoded, so a "decompression bomb" (a tiny file
declaring a huge image) is refused without allocating it.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from services.common.errors import InvalidInput
from services.common.imaging import MAX_SIDE

# Pillow's own bomb guard, tightened to our limit: anything past it fails at open.
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
#: Background that transparent areas are composited onto: photo paper.
PAPER_WHITE = (255, 255, 255)


def _to_8bit(image: Image.Image) -> Image.Image:
    """High-bit-depth greyscale (16-bit PNG/TIFF scans) scaled, not clipped, to 8 bits."""
    values = np.asarray(image, dtype=np.float32)
    peak = 1.0 if image.mode == "F" and values.max(initial=0) <= 1.0 else 65535.0
    return Image.fromarray(np.clip(values * (255.0 / peak), 0, 255).round().astype(np.uint8), "L")


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, PAPER_WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _open(data: bytes) -> Image.Image:
    """The image with its header read and checked, no pixel decoded yet."""
    if not data:
        raise InvalidInput("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidInput("not an image: the format was not recognised") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(f"the image declares more than {MAX_SIDE}x{MAX_SIDE} pixels") from None
    except Exception as error:  # Pillow raises many types for malformed headers
        raise InvalidInput(f"corrupt or truncated image header: {error}") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidInput(f"the image has no pixels ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InvalidInput(f"the image is {width}x{height}; each side must be at most {MAX_SIDE}")
    return image


def declared_pixels(data: bytes) -> int:
    """Width x height as the file's header declares them (0 when it cannot be read: decoding says why)."""
    try:
        width, height = _open(data).size
    except InvalidInput:
        return 0
    return width * height


def decode_photo(data: bytes) -> np.ndarray:
    """Bytes of an image file -> HxWx3 uint8 RGB, or InvalidInput saying what is wrong."""
    image = _open(data)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return np.asarray(to_rgb(image))
    except Exception as error:  # truncated data, bad CRC, broken compression...
        raise InvalidInput(f"corrupt or truncated image: {error}") from None
