"""Tiny real images for tests."""

from __future__ import annotations

import io

from PIL import Image


def jpeg_bytes(width: int = 32, height: int = 24,
               color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small valid JPEG; different colours give different content hashes."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()
