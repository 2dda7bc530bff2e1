"""Client side of model delivery: a city's newest model from a server, cached, used offline.

The model is cached under the data directory and downloaded again only when the server's
/model/version changed. The warehouse's own current model is opened by
`sightscan.warehouse.registry`, not here: this module never touches the warehouse.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import httpx

from sightscan.cities import normalise_city
from sightscan.config import Settings
from sightscan.errors import ExternalServiceError, NotFoundError
from sightscan.inference import Detector


def _cache_paths(cache_dir: Path, city: str) -> tuple[Path, Path]:
    safe = quote(city, safe="")  # the normalised name is safe already; quoting is belt and braces
    return cache_dir / f"{safe}.onnx", cache_dir / f"{safe}.json"


def download_model(
    server: str, city: str, cache_dir: Path, *, client: httpx.Client | None = None
) -> tuple[Path, int]:
    """The cached model file of a city, refreshed from `server` when its version changed."""
    city = normalise_city(city)
    model_path, info_path = _cache_paths(cache_dir, city)
    base = server.rstrip("/") + f"/api/cities/{quote(city, safe='')}"
    own_client = client is None
    http = client or httpx.Client(timeout=60, follow_redirects=True)
    try:
        response = http.get(base + "/model/version")
        response.raise_for_status()
        version = int(response.json())
        if version < 0:
            raise NotFoundError(f"the server has no model for {city}")
        cached = json.loads(info_path.read_text()) if info_path.is_file() else {}
        if cached.get("version") == version and model_path.is_file():
            return model_path, version
        response = http.get(base + "/model")
        response.raise_for_status()
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = model_path.with_suffix(".tmp")
        tmp.write_bytes(response.content)
        os.replace(tmp, model_path)
        info_path.write_text(json.dumps({"version": version, "etag": response.headers.get("etag")}))
        return model_path, version
    except (httpx.HTTPError, ValueError) as exc:
        raise ExternalServiceError(
            f"could not get the model of {city} from {server}: {exc}"
        ) from None
    finally:
        if own_client:
            http.close()


def server_detector(server: str, city: str, *, settings: Settings) -> Detector:
    """A detector for the city's newest model on `server` (downloaded once, then cached)."""
    path, _ = download_model(server, city, settings.sightscan_data_dir / "model-cache")
    return Detector.from_path(path)
