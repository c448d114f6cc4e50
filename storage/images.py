"""Decoding untrusted images safely, shared by the bot (to answer bad input at once) and the worker.

Pillow only, no models. Limits follow Telegram and Pillow: a 40-megapixel ceiling keeps a
decompression bomb from taking the worker's memory, and a truncated file is an error,
not a half-grey picture.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 20 * 1024 * 1024  # what the Bot API's getFile lets a bot download

Image.MAX_IMAGE_PIXELS = MAX_PIXELS

RejectReason = Literal["not_image", "corrupt", "too_many_pixels", "too_large"]


class ImageRejected(ValueError):
    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: RejectReason = reason


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes) -> Image.Image:
    """Fully decoded RGB image with EXIF orientation applied, or ImageRejected."""
    if len(data) > MAX_FILE_BYTES:
        raise ImageRejected("too_large", f"{len(data)} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageRejected("too_many_pixels", f"{width}x{height}")
            image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not_image", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", str(exc)) from exc
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB")
