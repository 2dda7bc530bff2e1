"""Photos from Wikimedia Commons through the MediaWiki Action API.

Two strategies fill a sight's quota: a full-text file search ("<sight> <city>
filetype:bitmap"), then the files of `Category:<sight>`. `continue` is followed, the API's
{"error": {"code", "info"}} shape is translated, and `maxlag` errors are retried after the
server's Retry-After (capped). Photos are the 1024 px thumbnails, licence and author from
extmetadata. `category_photos` lists a category's files (the everyday pool), and
`is_open_licence` tells the licences whose photos may be kept without asking anyone.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx

from sightscan.crawler.download import download_photo
from sightscan.crawler.types import PhotoCandidate, Sight
from sightscan.errors import ExternalServiceError
from sightscan.http import decode_json, request_with_retries, retry_after_seconds, retry_options

log = logging.getLogger(__name__)

DEFAULT_COMMONS_URL = "https://commons.wikimedia.org/w/api.php"
IMAGE_MIMES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/avif", "image/heic",
     "image/heif"}
)
MAX_BATCH = 50  # thumbnails per API request (the API scales at most 50 per request)
_TAGS = re.compile(r"<[^>]*>")
# CC0, public domain (PD-self, PD-old-70, ...), CC BY and CC BY-SA in any version or port;
# not NC or ND, not GFDL/FAL alone. Matched on the licence's short name, words normalised.
_OPEN_LICENCE = re.compile(
    r"cc0\b.*|cc zero\b.*|public domain\b.*|pd\b.*|cc pdm\b.*|cc by(?: sa)?(?: \d.*)?"
)


def strip_html(value: str) -> str:
    """Plain text of an extmetadata HTML value (tags removed, entities decoded, one line)."""
    return " ".join(html.unescape(_TAGS.sub(" ", value)).split())


def is_open_licence(short_name: str | None) -> bool:
    """True for CC0, public domain, CC BY and CC BY-SA (as extmetadata's LicenseShortName
    names them: "CC BY-SA 4.0", "Public domain", "CC0"); False for anything else or none."""
    if not short_name:
        return False
    words = " ".join(re.sub(r"[-_/]", " ", short_name.casefold()).split())
    return _OPEN_LICENCE.fullmatch(words) is not None


class CommonsPhotoSource:
    """Photo candidates of a sight from Wikimedia Commons."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        url: str = DEFAULT_COMMONS_URL,
        thumb_width: int = 1024,
        maxlag: int = 5,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._url = url
        self._thumb_width = thumb_width
        self._maxlag = maxlag
        self._retries = retries
        self._retry = retry_options(retries, backoff, max_backoff)
        self._max_backoff = max_backoff
        self._sleep = sleep

    def photos_for(self, sight: Sight, city: str, limit: int) -> Iterator[PhotoCandidate]:
        """Search results first, then category members, without repeats, at most `limit`."""
        seen: set[str] = set()
        strategies = (
            {
                "generator": "search",
                "gsrsearch": f"{sight.name} {city} filetype:bitmap",
                "gsrnamespace": "6",
            },
            {
                "generator": "categorymembers",
                "gcmtitle": f"Category:{sight.name}",
                "gcmtype": "file",
            },
        )
        for strategy in strategies:
            for candidate in self._pages(strategy, limit - len(seen)):
                if candidate.url not in seen:
                    seen.add(candidate.url)
                    yield candidate
                if len(seen) >= limit:
                    return

    def category_photos(self, category: str, limit: int) -> Iterator[PhotoCandidate]:
        """Up to `limit` bitmap files of `Category:<category>` (not its subcategories)."""
        title = category if category.startswith("Category:") else f"Category:{category}"
        strategy = {"generator": "categorymembers", "gcmtitle": title, "gcmtype": "file"}
        yield from self._pages(strategy, limit)

    def _pages(self, strategy: dict[str, str], limit: int) -> Iterator[PhotoCandidate]:
        params: dict[str, Any] = {
            "action": "query",
            "prop": "imageinfo",
            "iiprop": "url|extmetadata|size|mime",
            "iiurlwidth": str(self._thumb_width),
            "iiextmetadatafilter": "LicenseShortName|Artist",
            "format": "json",
            "formatversion": "2",
            "maxlag": str(self._maxlag),
            **strategy,
        }
        limit_key = "gsrlimit" if strategy["generator"] == "search" else "gcmlimit"
        params[limit_key] = str(min(max(limit, 1), MAX_BATCH))
        cont: dict[str, Any] | None = {"continue": ""}
        yielded = 0
        while cont is not None and yielded < limit:
            body = self._query({**params, **cont})
            pages = (body.get("query") or {}).get("pages") or []
            for page in sorted(pages, key=lambda p: p.get("index", 0)):
                candidate = self._candidate(page)
                if candidate is not None:
                    yielded += 1
                    yield candidate
            next_cont = body.get("continue")
            cont = next_cont if isinstance(next_cont, dict) and next_cont else None

    def _query(self, params: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self._retries + 1):
            raw = request_with_retries(
                self._client,
                "GET",
                self._url,
                params=params,
                service="Wikimedia Commons",
                **self._retry,
            )
            response = decode_json(raw, "Wikimedia Commons")
            if not isinstance(response, dict):
                raise ExternalServiceError("Wikimedia Commons returned an unexpected JSON shape")
            error = response.get("error")
            if not isinstance(error, dict):
                return response
            code = str(error.get("code", "unknown"))
            info = " ".join(str(error.get("info", "")).split())[:160]
            if code != "maxlag" or attempt == self._retries:
                raise ExternalServiceError(f"Wikimedia Commons API error {code}: {info}")
            hint = retry_after_seconds(raw.headers.get("Retry-After"))
            wait = min(self._max_backoff, 1.0 if hint is None else hint)
            log.info("Wikimedia Commons: maxlag (%s); retry in %.2fs", info, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _candidate(self, page: dict[str, Any]) -> PhotoCandidate | None:
        infos = page.get("imageinfo")
        if not isinstance(infos, list) or not infos or not isinstance(infos[0], dict):
            return None
        info = infos[0]
        if info.get("mime") not in IMAGE_MIMES:
            return None
        url = info.get("thumburl") or info.get("url")
        if not isinstance(url, str) or not url:
            return None
        raw_meta = info.get("extmetadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        return PhotoCandidate(
            url=url,
            page_url=info.get("descriptionurl"),
            licence=_meta_text(meta, "LicenseShortName"),
            author=_meta_text(meta, "Artist"),
            fetch=partial(self._fetch, url),
        )

    def _fetch(self, url: str, max_bytes: int) -> bytes:
        return download_photo(self._client, url, max_bytes, **self._retry)


def _meta_text(meta: dict[str, Any], key: str) -> str | None:
    entry = meta.get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    if not isinstance(value, str):
        return None
    text = strip_html(value)
    return text[:300] or None
