"""IC, the image crawler: discover a city's top sights and collect checked photos of each.

Providers (one per module) take an injected `httpx.Client`; `crawl_city` ties a discovery
provider and a photo source to a sink that stores photos in the warehouse.
"""

from sightscan.crawler.crawl import CrawlReport, Sink, crawl_city
from sightscan.crawler.errors import NoSightsFoundError, PhotoTooLargeError
from sightscan.crawler.factory import make_discovery, make_photo_source
from sightscan.crawler.types import (
    CrawledPhoto,
    PhotoCandidate,
    PhotoSource,
    Sight,
    SightDiscovery,
)

__all__ = [
    "CrawlReport",
    "CrawledPhoto",
    "NoSightsFoundError",
    "PhotoCandidate",
    "PhotoSource",
    "PhotoTooLargeError",
    "Sight",
    "SightDiscovery",
    "Sink",
    "crawl_city",
    "make_discovery",
    "make_photo_source",
]
