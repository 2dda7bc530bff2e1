"""Decode-and-check for every image that enters SightScan (uploads, crawls, imports, detect).

The type is decided by decoding the content, never by a file name; the pixel count is
checked before decoding (decompression-bomb guard); truncated files are rejected.
AVIF is decoded by Pillow's own plugin, HEIC/HEIF (phone photos) by pillow-heif, whose
opener is registered on first use rather than at import.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sightscan.errors import InvalidImageError

ALLOWED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "MPO": "image/jpeg",
    "AVIF": "image/avif",
    "HEIF": "image/heic",  # pillow-heif's name for HEIC and HEIF photos
}
FORMAT_NAMES = "jpeg, png, gif, bmp, webp, tiff, avif or heic"
DEFAULT_MAX_PIXELS = 50_000_000


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a checked image is: its format, size and content hash."""

    format: str
    mime_type: str
    width: int
    height: int
    sha256: str
    size_bytes: int


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes: the content address of blobs and the image dedupe key."""
    return hashlib.sha256(data).hexdigest()


@cache
def register_formats() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif); AVIF is Pillow's own since 11.3."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


@contextmanager
def _checked(data: bytes, max_bytes: int | None, max_pixels: int) -> Iterator[Image.Image]:
    """The opened image once its format and size are checked (before any pixel is
    decoded); every decoding failure inside the block becomes an InvalidImageError."""
    if not data:
        raise InvalidImageError("expected image bytes, got an empty file")
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidImageError(f"expected at most {max_bytes} bytes, got {len(data)}")
    register_formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                if fmt not in ALLOWED_FORMATS:
                    raise InvalidImageError(
                        f"expected one of {FORMAT_NAMES}, got {fmt.lower() or 'unknown'}"
                    )
                width, height = image.size
                if width < 1 or height < 1 or width * height > max_pixels:
                    raise InvalidImageError(
                        f"expected at most {max_pixels} pixels, got {width}x{height}"
                    )
                yield image
    except InvalidImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(f"expected a {FORMAT_NAMES} image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"expected an intact image, got a broken file ({exc})") from None


def inspect_image(
    data: bytes, *, max_bytes: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """Check that `data` is a whole, supported image of sane size; return what it is."""
    with _checked(data, max_bytes, max_pixels) as image:
        fmt, (width, height) = image.format or "", image.size
        image.load()  # full decode: catches truncated and corrupt files
    return ImageInfo(fmt, ALLOWED_FORMATS[fmt], width, height, sha256_hex(data), len(data))


def decode_checked_rgb(data: bytes, *, at_least: int | None = None,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Check and decode in one pass (as `inspect_image`, then `open_rgb`), for detection.

    With `at_least`, a JPEG is decoded at the smallest scale (1/2, 1/4 or 1/8, done inside
    the decoder) that keeps both sides at least that long: a phone photo shrunk to a
    256-pixel model input decodes several times faster.
    """
    from PIL import ImageOps

    with _checked(data, None, max_pixels) as image:
        if at_least is not None:
            image.draft(None, (at_least, at_least))
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")


def read_photo(path: str | Path) -> bytes:
    """The bytes of a photo file; InvalidImageError saying plainly what is wrong with the path."""
    path = Path(path)
    if path.is_dir():
        raise InvalidImageError(f"{path}: is a folder, expected a photo file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidImageError(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot be read ({exc.strerror})") from None


def open_rgb(data: bytes) -> Image.Image:
    """Decode bytes to an RGB PIL image (EXIF orientation applied)."""
    from PIL import ImageOps

    register_formats()
    with Image.open(io.BytesIO(data)) as image:
        return ImageOps.exif_transpose(image).convert("RGB")
