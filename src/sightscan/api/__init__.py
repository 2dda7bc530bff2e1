"""DOS: the public REST API (FastAPI); `create_app()` builds it, `sightscan api` serves it."""

from sightscan.api.app import create_app

__all__ = ["create_app"]
