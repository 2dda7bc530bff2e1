"""The web client and the API docs, both usable with no internet.

`/` redirects to the page, `/app/` serves its static files (gzip-compressed once per
process for clients that accept it), and `/docs` is served from the Swagger UI files
vendored by the `fastapi-offline` package instead of a CDN. (No /redoc: ReDoc's bundle
fetches its logo from a CDN.)
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.types import Scope

from sightscan.web import WEB_ROOT

router = APIRouter(include_in_schema=False)

COMPRESSIBLE = frozenset(
    {".html", ".js", ".mjs", ".css", ".json", ".webmanifest", ".svg", ".wasm", ".txt", ".map"}
)
"""Suffixes worth compressing; PNG and ONNX bytes hardly shrink."""
MIN_COMPRESS_BYTES = 1024
DOCS_ASSETS = "/docs-assets"


@lru_cache(maxsize=64)
def _gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    """The gzip bytes of a file, computed once per version of the file (mtime, size)."""
    # Level 6: the wasm shrinks as much as at 9 (14.2 -> 3.7 MB) in a third of the time.
    return gzip.compress(Path(path).read_bytes(), compresslevel=6, mtime=0)


def accepts_gzip(scope: Scope) -> bool:
    """Whether the request's Accept-Encoding allows gzip (and does not refuse it with q=0)."""
    for part in Headers(scope=scope).get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class CompressedFiles(StaticFiles):
    """Static files, sent gzip-compressed (Content-Encoding) to clients that accept it."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if not isinstance(response, FileResponse) or response.status_code != 200:
            return response
        stat = response.stat_result
        source = Path(response.path)
        if (
            stat is None
            or source.suffix not in COMPRESSIBLE
            or stat.st_size < MIN_COMPRESS_BYTES
            or not accepts_gzip(scope)
        ):
            response.headers["Vary"] = "Accept-Encoding"
            return response
        body = await anyio.to_thread.run_sync(_gzipped, str(source), stat.st_mtime_ns, stat.st_size)
        headers = {
            "Content-Encoding": "gzip",
            "Vary": "Accept-Encoding",
            # A weak tag: same file, other bytes; StaticFiles still answers 304 to it.
            "ETag": "W/" + response.headers["etag"],
            "Last-Modified": response.headers["last-modified"],
        }
        return Response(body, media_type=response.media_type, headers=headers)


class WebFiles(CompressedFiles):
    """The page's static files; the Python files of the `sightscan.web` package stay private."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.endswith((".py", ".pyc")) or "__pycache__" in path:
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        # Cross-origin isolation gives the page SharedArrayBuffer, so onnxruntime-web runs
        # the model on several threads; the page loads nothing from other origins.
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
        if path.endswith("sw.js"):
            # The service worker must be re-checked on every visit to pick up a new app.
            response.headers["Cache-Control"] = "no-cache"
        return response


@router.get("/")
def home() -> RedirectResponse:
    """The page lives under /app/ so that its relative URLs stay short."""
    return RedirectResponse("/app/", status_code=307)


def docs_assets_folder() -> Path:
    """The Swagger UI files vendored by the `fastapi-offline` package."""
    return Path(str(files("fastapi_offline") / "static"))


def mount_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) from local assets; `app` needs docs_url=None."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=root + oauth2_redirect,
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}/app/icons/icon-192.png",
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.mount(DOCS_ASSETS, CompressedFiles(directory=docs_assets_folder()), name="docs-assets")


def mount_web(app: FastAPI) -> None:
    """Serve the web client on `app`: GET / -> /app/, static files (index.html) at /app/.

    When `app` was made with docs_url=None, the offline /docs comes with it.
    """
    app.include_router(router)
    if app.docs_url is None and not any(
        getattr(route, "path", None) == "/docs" for route in app.routes
    ):
        mount_docs(app)
    app.mount("/app", WebFiles(directory=WEB_ROOT, html=True), name="web")
