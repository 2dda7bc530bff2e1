"""The web client: `/` redirects to the page, `/app/` serves the static files."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from sightscan.web import WEB_ROOT

router = APIRouter(include_in_schema=False)


class WebFiles(StaticFiles):
    """The page's static files; the Python files of the `sightscan.web` package stay private."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.endswith((".py", ".pyc")) or "__pycache__" in path:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


@router.get("/")
def home() -> RedirectResponse:
    """The page lives under /app/ so that its relative URLs stay short."""
    return RedirectResponse("/app/", status_code=307)


def mount_web(app: FastAPI) -> None:
    """Serve the web client on `app`: GET / -> /app/, static files (index.html) at /app/."""
    app.include_router(router)
    app.mount("/app", WebFiles(directory=WEB_ROOT, html=True), name="web")
