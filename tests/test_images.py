"""Image checks: type by content, pixel cap before decoding, truncation detected."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from sightscan.errors import InvalidImageError
from sightscan.images import (
    decode_checked_rgb,
    inspect_image,
    open_rgb,
    register_formats,
    sha256_hex,
)


def encode(fmt: str, size: tuple[int, int] = (32, 20), mode: str = "RGB") -> bytes:
    register_formats()  # HEIF is written by pillow-heif
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 100, 50) if mode == "RGB" else 1).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"), ("BMP", "image/bmp"),
     ("WEBP", "image/webp"), ("TIFF", "image/tiff"), ("AVIF", "image/avif"),
     ("HEIF", "image/heic")],
)
def test_supported_formats_are_accepted(fmt: str, mime: str) -> None:
    data = encode(fmt)
    info = inspect_image(data)
    assert (info.format, info.mime_type, info.width, info.height) == (fmt, mime, 32, 20)
    assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size_bytes == len(data)


def test_type_is_decided_by_content_not_name() -> None:
    assert inspect_image(encode("PNG")).mime_type == "image/png"


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, I am a text file renamed to photo.jpg", b"%PDF-1.4\n" + b"0" * 200,
     b"\xff\xd8\xff\xe0" + b"\x00" * 50],
    ids=["empty", "text", "pdf", "jpeg-magic-only"],
)
def test_non_images_are_rejected(data: bytes) -> None:
    with pytest.raises(InvalidImageError):
        inspect_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "AVIF", "HEIF"])
def test_truncated_images_are_rejected(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, format=fmt)
    data = buffer.getvalue()
    with pytest.raises(InvalidImageError):
        inspect_image(data[: len(data) // 2])


def test_unsupported_format_is_rejected_by_name() -> None:
    with pytest.raises(InvalidImageError, match="ico"):
        inspect_image(encode("ICO", (16, 16)))


def test_too_many_pixels_are_rejected_before_decoding() -> None:
    with pytest.raises(InvalidImageError, match="pixels"):
        inspect_image(encode("PNG", (200, 100)), max_pixels=10_000)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_phone_formats_get_the_same_pixel_limit(fmt: str) -> None:
    with pytest.raises(InvalidImageError, match="pixels"):
        inspect_image(encode(fmt, (200, 100)), max_pixels=10_000)


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_phone_formats_decode_to_rgb(fmt: str) -> None:
    image = open_rgb(encode(fmt, (40, 30)))
    assert image.mode == "RGB" and image.size == (40, 30)
    red, green, blue = image.getpixel((20, 15))  # type: ignore[misc]
    assert red > 150 and 60 < green < 140 and blue < 100  # lossy, but the colour survives


def test_decompression_bomb_is_rejected() -> None:
    bomb = encode("PNG", (12_000, 12_000), mode="1")
    assert len(bomb) < 100_000
    with pytest.raises(InvalidImageError):
        inspect_image(bomb)


def test_byte_limit_is_enforced() -> None:
    data = encode("PNG")
    with pytest.raises(InvalidImageError, match="bytes"):
        inspect_image(data, max_bytes=len(data) - 1)
    assert inspect_image(data, max_bytes=len(data)).size_bytes == len(data)


def test_sha256_hex_is_the_content_address() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_open_rgb_applies_exif_orientation() -> None:
    image = Image.new("RGB", (40, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    opened = open_rgb(buffer.getvalue())
    assert opened.mode == "RGB" and opened.size == (10, 40)


def test_open_rgb_converts_palette_and_alpha() -> None:
    assert open_rgb(encode("GIF")).mode == "RGB"
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), (1, 2, 3, 0)).save(buffer, format="PNG")
    assert open_rgb(buffer.getvalue()).mode == "RGB"


def test_a_large_jpeg_decodes_at_a_smaller_scale_for_a_model_input() -> None:
    image = Image.linear_gradient("L").resize((1024, 768)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: 768 x 1024
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    data = buffer.getvalue()
    assert decode_checked_rgb(data).size == (768, 1024)
    small = decode_checked_rgb(data, at_least=256)
    assert small.mode == "RGB" and small.size == (384, 512)  # 1/2: 1/4 would go under 256
    full = np.asarray(open_rgb(data).resize(small.size, Image.Resampling.BILINEAR), np.int16)
    assert np.abs(np.asarray(small, np.int16) - full).mean() < 3  # the same picture


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_one_pass_decode_rejects_what_inspect_rejects(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.effect_noise((512, 512), 60).convert("RGB").save(buffer, format=fmt)
    data = buffer.getvalue()
    with pytest.raises(InvalidImageError, match="broken"):
        decode_checked_rgb(data[: len(data) // 2], at_least=64)
    with pytest.raises(InvalidImageError, match="pixels"):
        decode_checked_rgb(data, at_least=64, max_pixels=10_000)
    with pytest.raises(InvalidImageError):
        decode_checked_rgb(b"%PDF-1.4\n" + b"0" * 200)
