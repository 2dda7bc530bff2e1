"""The crawler's typed objects and the two provider interfaces (discovery and photo source)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from sightscan.images import ImageInfo

DEFAULT_MAX_PHOTO_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sight:
    """A sight of a city as a discovery provider reports it."""

    name: str
    lat: float | None = None
    lon: float | None = None
    source: str = "static"
    source_id: str | None = None
    description: str | None = None  # what the sight is, in a sentence, when the provider says
    url: str | None = None  # a page about it (Wikipedia, Wikidata, Google Maps, its website)


Fetch = Callable[[int], bytes]
"""Download a photo: `fetch(max_bytes)` returns its bytes or raises PhotoTooLargeError,
InvalidImageError (not an image) or ExternalServiceError (download failed)."""


@dataclass(frozen=True, slots=True)
class PhotoCandidate:
    """A photo a source offers for a sight; nothing is downloaded until `fetch` is called."""

    url: str
    page_url: str | None
    licence: str | None
    author: str | None
    fetch: Fetch


@dataclass(frozen=True, slots=True)
class CrawledPhoto:
    """A downloaded and checked photo, handed to the crawl's sink."""

    city: str
    sight: str
    data: bytes
    url: str
    page_url: str | None
    licence: str | None
    author: str | None
    info: ImageInfo | None = None  # the decode check's result, so storing need not decode again


class SightDiscovery(Protocol):
    """Finds a city's top sights, best first."""

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """At most `limit` sights of `city`, most popular first; [] when none are known."""
        ...


class PhotoSource(Protocol):
    """Offers photos of one sight."""

    def photos_for(self, sight: Sight, city: str, limit: int) -> Iterator[PhotoCandidate]:
        """Up to `limit` photo candidates of `sight` in `city`, lazily."""
        ...
