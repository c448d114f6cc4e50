"""Untrusted image decoding: every kind of bad file is refused with a reason, good ones decode."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from storage.images import MAX_FILE_BYTES, ImageRejected, decode_image


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_a_jpeg_decodes_to_rgb() -> None:
    image = decode_image(_encode(Image.new("RGB", (64, 48), (200, 10, 10)), "JPEG"))
    assert image.mode == "RGB" and image.size == (64, 48)


def test_exif_orientation_is_applied() -> None:
    source = Image.new("RGB", (64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    image = decode_image(_encode(source, "JPEG", exif=exif))
    assert image.size == (48, 64)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"definitely not an image", "not_image"),
        (b"", "not_image"),
        (_encode(Image.new("RGB", (400, 400), (1, 2, 3)), "JPEG")[:300], "corrupt"),
        (_encode(Image.new("L", (8000, 5100)), "PNG"), "too_many_pixels"),
        (_encode(Image.new("1", (30000, 30000)), "PNG"), "too_many_pixels"),
    ],
    ids=["text", "empty", "truncated-jpeg", "over-40-megapixels", "decompression-bomb"],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image(data)
    assert info.value.reason == reason


def test_files_over_telegrams_download_limit_are_refused() -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image(b"\xff" * (MAX_FILE_BYTES + 1))
    assert info.value.reason == "too_large"
