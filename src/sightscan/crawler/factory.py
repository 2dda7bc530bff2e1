"""Build the crawl's sight discovery and photo source from one typed configuration.

`CrawlerConfig.from_settings` reads SIGHTSCAN_DISCOVERY, SIGHTSCAN_PHOTO_SOURCE, MAPS_KEY and
the provider URLs once and checks them against the one list of allowed values in
`sightscan.config`; a misspelt option fails there, at start. The default discovery `auto` is
a chain: Google Places when MAPS_KEY is set, else Wikidata, then OpenStreetMap; the next
provider is asked when one fails or finds nothing. The caller owns and closes the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from sightscan.config import AUTO_DISCOVERY, DISCOVERIES, PHOTO_SOURCES, Settings
from sightscan.crawler.commons import DEFAULT_COMMONS_URL, CommonsPhotoSource
from sightscan.crawler.errors import NoSightsFoundError
from sightscan.crawler.folder import FolderSource
from sightscan.crawler.osm import DEFAULT_OVERPASS_URL, OverpassDiscovery
from sightscan.crawler.places import DEFAULT_PLACES_URL, PlacesDiscovery
from sightscan.crawler.static import StaticDiscovery
from sightscan.crawler.types import PhotoSource, Sight, SightDiscovery
from sightscan.crawler.wikidata import DEFAULT_WIKIDATA_URL, WikidataDiscovery
from sightscan.errors import ConfigurationError, ExternalServiceError

log = logging.getLogger(__name__)

NETWORK_DISCOVERIES = ("places", "wikidata", "osm")


@dataclass(frozen=True, slots=True)
class CrawlerConfig:
    """The crawler's options, validated: discovery chain, photo source, key and URLs."""

    discovery: tuple[str, ...] = ("wikidata", "osm")
    photo_source: str = "commons"
    maps_key: SecretStr | None = None
    overpass_url: str = DEFAULT_OVERPASS_URL
    places_url: str = DEFAULT_PLACES_URL
    wikidata_url: str = DEFAULT_WIKIDATA_URL
    commons_url: str = DEFAULT_COMMONS_URL

    def __post_init__(self) -> None:
        for name in self.discovery:
            if name not in DISCOVERIES:
                raise ConfigurationError(
                    f"SIGHTSCAN_DISCOVERY: expected one of {', '.join(DISCOVERIES)}, got {name!r}"
                )
        if not self.discovery:
            raise ConfigurationError("SIGHTSCAN_DISCOVERY: expected at least one provider")
        if "places" in self.discovery and not _secret(self.maps_key):
            raise ConfigurationError("MAPS_KEY: required for the `places` sight discovery")
        if self.photo_source not in PHOTO_SOURCES:
            raise ConfigurationError(
                f"SIGHTSCAN_PHOTO_SOURCE: expected one of {', '.join(PHOTO_SOURCES)}, "
                f"got {self.photo_source!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> CrawlerConfig:
        """The configuration the settings describe (`auto` resolved against MAPS_KEY)."""
        names = tuple(n for n in settings.sightscan_discovery.split(",") if n)
        if names == (AUTO_DISCOVERY,):
            names = (("places",) if _secret(settings.maps_key) else ()) + ("wikidata", "osm")
        return cls(
            discovery=names,
            photo_source=settings.sightscan_photo_source,
            maps_key=settings.maps_key,
            overpass_url=settings.sightscan_overpass_url,
            places_url=settings.sightscan_places_url,
            wikidata_url=settings.sightscan_wikidata_url,
            commons_url=settings.sightscan_commons_url,
        )


def make_discovery(
    name: str,
    *,
    client: httpx.Client | None = None,
    config: CrawlerConfig | None = None,
    sights: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    sights_file: Path | None = None,
    folder: Path | None = None,
) -> SightDiscovery:
    """The one discovery provider called `name`, with `config`'s key and URLs."""
    config = config or CrawlerConfig()
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
        return OverpassDiscovery(_need(client, name), url=config.overpass_url)
    if name == "places":
        key = _secret(config.maps_key)
        return PlacesDiscovery(_need(client, name), key or "", url=config.places_url)
    if name == "wikidata":
        return WikidataDiscovery(_need(client, name), url=config.wikidata_url)
    raise ConfigurationError(
        f"SIGHTSCAN_DISCOVERY: expected one of {', '.join(DISCOVERIES)}, got {name!r}"
    )


def make_photo_source(
    name: str,
    *,
    client: httpx.Client | None = None,
    config: CrawlerConfig | None = None,
    folder: Path | None = None,
) -> PhotoSource:
    """The photo source called `name`, with `config`'s URLs."""
    config = config or CrawlerConfig()
    name = name.strip().lower()
    if name == "commons":
        return CommonsPhotoSource(_need(client, name), url=config.commons_url)
    if name == "folder":
        if folder is None:
            raise ConfigurationError("SIGHTSCAN_PHOTO_SOURCE: `folder` needs a folder")
        return FolderSource(folder)
    raise ConfigurationError(
        f"SIGHTSCAN_PHOTO_SOURCE: expected one of {', '.join(PHOTO_SOURCES)}, got {name!r}"
    )


def build_discovery(
    config: CrawlerConfig,
    *,
    client: httpx.Client | None,
    display_name: str | None = None,
    sights: Sequence[str] | None = None,
    folder: Path | None = None,
) -> SightDiscovery:
    """The discovery of one crawl: an operator's folder or sights list when given, else the
    configured providers, chained. Network providers search for `display_name` (the
    gazetteer's name, e.g. "Munich"), not the upper-case key."""
    if folder is not None:
        return FolderSource(folder)
    if sights is not None:
        return StaticDiscovery(sights)
    providers = [(n, make_discovery(n, client=client, config=config)) for n in config.discovery]
    return DiscoveryChain(providers, display_name=display_name)


class DiscoveryChain:
    """Ask providers in order; the first that finds sights answers.

    A provider that fails (ExternalServiceError) or finds nothing hands over to the next.
    When none found sights: ExternalServiceError naming each failure if any failed (a
    network fault is worth a retry), else NoSightsFoundError.
    """

    def __init__(
        self, providers: Sequence[tuple[str, SightDiscovery]], *, display_name: str | None = None
    ) -> None:
        self._providers = list(providers)
        self._display_name = display_name

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """The first non-empty answer of the providers, in order."""
        failures: list[str] = []
        last_error: ExternalServiceError | None = None
        for name, provider in self._providers:
            searched = name in NETWORK_DISCOVERIES and self._display_name
            query = self._display_name if searched and self._display_name else city
            try:
                sights = provider.find_sights(query, limit)
            except ExternalServiceError as exc:
                log.warning("sight discovery %s failed for %s: %s", name, city, exc)
                failures.append(f"{name}: {exc}")
                last_error = exc
                continue
            if sights:
                return sights
            log.info("sight discovery %s found nothing for %s", name, city)
        tried = ", ".join(name for name, _ in self._providers)
        if last_error is not None and len(self._providers) == 1:
            raise last_error
        if failures:
            raise ExternalServiceError(
                f"sight discovery failed for {city} ({'; '.join(failures)})"[:1000]
            )
        raise NoSightsFoundError(f"no sights found for {city} by {tried}")


def _secret(value: str | SecretStr | None) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _need(client: httpx.Client | None, name: str) -> httpx.Client:
    if client is None:
        raise ConfigurationError(f"the `{name}` provider needs an HTTP client")
    return client
