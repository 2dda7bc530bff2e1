"""What a sight is: the short description and link discovery providers report, made safe to
keep (single-line text of bounded length, absolute http(s) URLs only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

MAX_DESCRIPTION = 500  # a sentence or two; longer text is cut at a word
MAX_URL = 2000  # the warehouse's URL column width


def short_description(value: Any) -> str | None:
    """`value` as one line of at most MAX_DESCRIPTION characters; None when empty or no text."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return text or None


def web_url(value: Any) -> str | None:
    """`value` when it is an absolute http(s) URL with a host that fits the column, else None
    (clients link to it, so no javascript:, data: or relative URLs)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or len(url) > MAX_URL or any(c.isspace() or ord(c) < 0x20 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def wikipedia_url(tag: Any) -> str | None:
    """The article URL of an OSM `wikipedia` tag ("en:Brandenburger Tor" or a full URL)."""
    if not isinstance(tag, str):
        return None
    if tag.strip().lower().startswith(("http://", "https://")):
        return web_url(tag)
    lang, sep, title = tag.partition(":")
    lang, title = lang.strip().lower(), " ".join(title.split())
    if not sep or not title or not lang.replace("-", "").isalpha() or len(lang) > 12:
        return None
    return web_url(f"https://{lang}.wikipedia.org/wiki/{quote(title.replace(' ', '_'))}")


def wikidata_url(qid: Any) -> str | None:
    """The item page of a Wikidata QID ("Q64")."""
    if isinstance(qid, str) and qid[:1] == "Q" and qid[1:].isdigit():
        return f"https://www.wikidata.org/wiki/{qid}"
    return None
