"""Fake Wikimedia Commons: the MediaWiki Action API (/w/api.php) and thumbnail files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fakes.server import FakeServer, Recorded, Reply

API_PATH = "/w/api.php"


@dataclass
class CommonsFile:
    """A file page on the fake wiki; `reply` is what downloading its thumbnail returns."""

    title: str
    sight: str
    reply: Reply
    category: str | None = None
    licence: str = "CC BY-SA 4.0"
    artist_html: str = '<a href="//commons.wikimedia.org/wiki/User:Jane">Jane &amp; Co</a>'
    mime: str = "image/jpeg"


class FakeCommons:
    """Search and category generators with `continue` paging, like formatversion=2."""

    def __init__(self, server: FakeServer, files: list[CommonsFile]) -> None:
        self.server = server
        self.files = files
        self.errors: list[Reply] = []  # replies served before normal answers (maxlag, ...)
        self.page_cap = 50  # at most this many pages per answer, whatever the limit asked
        self.failing: dict[str, Reply] = {}  # category title -> what listing it answers
        server.route("GET", API_PATH, self.handle)
        for index, file in enumerate(files):
            server.route("GET", self.thumb_path(index), file.reply)

    @staticmethod
    def thumb_path(index: int) -> str:
        return f"/thumb/{index}.jpg"

    def handle(self, request: Recorded) -> Reply:
        if self.errors:
            return self.errors.pop(0)
        if request.param("action") != "query" or request.param("formatversion") != "2":
            return Reply(200, {"error": {"code": "badvalue", "info": "Unrecognized value"}})
        generator = request.param("generator")
        if generator == "search":
            wanted = (request.param("gsrsearch") or "").casefold()
            matches = [i for i, f in enumerate(self.files) if f.sight.casefold() in wanted]
            offset_key, limit_key = "gsroffset", "gsrlimit"
        elif generator == "categorymembers":
            title = request.param("gcmtitle")
            if title in self.failing:
                return self.failing[title]
            matches = [i for i, f in enumerate(self.files)
                       if f.category and f"Category:{f.category}" == title]
            offset_key, limit_key = "gcmcontinue", "gcmlimit"
        else:
            return Reply(200, {"error": {"code": "badvalue", "info": "bad generator"}})
        offset = int(request.param(offset_key) or 0)
        limit = min(int(request.param(limit_key) or 10), self.page_cap)
        chosen = matches[offset:offset + limit]
        body: dict[str, Any] = {"batchcomplete": True}
        if chosen:
            pages = [self._page(i, position) for position, i in enumerate(chosen, start=offset)]
            body["query"] = {"pages": list(reversed(pages))}  # order is by `index`, not list
        if offset + limit < len(matches):
            body["continue"] = {offset_key: str(offset + limit), "continue": f"{offset_key}||"}
        return Reply(200, body)

    def _page(self, index: int, position: int) -> dict[str, Any]:
        file = self.files[index]
        thumb = f"{self.server.url}{self.thumb_path(index)}"
        return {
            "pageid": 1000 + index, "ns": 6, "title": file.title, "index": position + 1,
            "imageinfo": [{
                "size": 123456, "width": 4000, "height": 3000,
                "thumburl": thumb, "thumbwidth": 1024, "thumbheight": 768,
                "url": f"{self.server.url}/original/{index}.jpg",
                "descriptionurl": f"https://commons.wikimedia.org/wiki/{file.title}",
                "mime": file.mime,
                "extmetadata": {
                    "LicenseShortName": {"value": file.licence, "source": "commons-desc-page",
                                         "hidden": ""},
                    "Artist": {"value": file.artist_html, "source": "commons-desc-page"},
                },
            }],
        }


def maxlag_error(retry_after: str = "0") -> Reply:
    """The API's maxlag answer: an error object plus Retry-After."""
    return Reply(200, {"error": {"code": "maxlag", "info": "Waiting for db1: 7 seconds lagged",
                                 "host": "db1", "lag": 7, "type": "db"}},
                 headers={"Retry-After": retry_after, "X-Database-Lag": "7"})
