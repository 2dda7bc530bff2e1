"""Errors of the image crawler (IC); both are `SightScanError`s from sightscan.errors' tree."""

from __future__ import annotations

from sightscan.errors import InvalidImageError, SightScanError


class NoSightsFoundError(SightScanError, LookupError):
    """Discovery found no sights for the city (unknown city, or nothing tagged there)."""


class PhotoTooLargeError(InvalidImageError):
    """A photo download went past the byte cap; it was dropped without being stored."""
