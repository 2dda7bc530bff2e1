"""Build the configured discovery provider and photo source by name (SIGHTSCAN_DISCOVERY,
SIGHTSCAN_PHOTO_SOURCE); the caller owns and closes the httpx client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from sightscan.crawler.commons import DEFAULT_COMMONS_URL, CommonsPhotoSource
from sightscan.crawler.folder import FolderSource
from sightscan.crawler.osm import DEFAULT_OVERPASS_URL, OverpassDiscovery
from sightscan.crawler.places import DEFAULT_PLACES_URL, PlacesDiscovery
from sightscan.crawler.static import StaticDiscovery
from sightscan.crawler.types import PhotoSource, SightDiscovery
from sightscan.crawler.wikidata import DEFAULT_WIKIDATA_URL, WikidataDiscovery
from sightscan.errors import ConfigurationError

DISCOVERIES = ("static", "osm", "places", "wikidata", "folder")
PHOTO_SOURCES = ("commons", "folder")


def make_discovery(
    name: str,
    *,
    client: httpx.Client | None = None,
    maps_key: str | SecretStr | None = None,
    sightscan_overpass_url: str = DEFAULT_OVERPASS_URL,
    sightscan_places_url: str = DEFAULT_PLACES_URL,
    sightscan_wikidata_url: str = DEFAULT_WIKIDATA_URL,
    sights: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    sights_file: Path | None = None,
    folder: Path | None = None,
    **_ignored: Any,
) -> SightDiscovery:
    """The discovery provider called `name`; extra Settings fields are accepted and ignored."""
    name = name.strip().lower()
    if name == "static":
        if sights is not None:
            return StaticDiscovery(sights)
        if sights_file is not None:
            return StaticDiscovery.from_file(sights_file)
        if folder is not None:
            return FolderSource(folder)
        raise ConfigurationError(
            "SIGHTSCAN_DISCOVERY: `static` needs a sights list, a sights file or a folder"
        )
    if name == "folder":
        if folder is None:
            raise ConfigurationError("SIGHTSCAN_DISCOVERY: `folder` needs a folder")
        return FolderSource(folder)
    if name == "osm":
        return OverpassDiscovery(_need(client, name), url=sightscan_overpass_url)
    if name == "places":
        key = maps_key.get_secret_value() if isinstance(maps_key, SecretStr) else maps_key
        return PlacesDiscovery(_need(client, name), key or "", url=sightscan_places_url)
    if name == "wikidata":
        return WikidataDiscovery(_need(client, name), url=sightscan_wikidata_url)
    raise ConfigurationError(
        f"SIGHTSCAN_DISCOVERY: expected one of {', '.join(DISCOVERIES)}, got {name!r}"
    )


def make_photo_source(
    name: str,
    *,
    client: httpx.Client | None = None,
    sightscan_commons_url: str = DEFAULT_COMMONS_URL,
    folder: Path | None = None,
    **_ignored: Any,
) -> PhotoSource:
    """The photo source called `name`; extra Settings fields are accepted and ignored."""
    name = name.strip().lower()
    if name == "commons":
        return CommonsPhotoSource(_need(client, name), url=sightscan_commons_url)
    if name == "folder":
        if folder is None:
            raise ConfigurationError("SIGHTSCAN_PHOTO_SOURCE: `folder` needs a folder")
        return FolderSource(folder)
    raise ConfigurationError(
        f"SIGHTSCAN_PHOTO_SOURCE: expected one of {', '.join(PHOTO_SOURCES)}, got {name!r}"
    )


def _need(client: httpx.Client | None, name: str) -> httpx.Client:
    if client is None:
        raise ConfigurationError(f"the `{name}` provider needs an HTTP client")
    return client
