"""Detection on the server, for clients that cannot run the model themselves."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from sightscan.api.deps import CityDep, RateLimited, SettingsDep, WarehouseDep
from sightscan.api.schemas import ErrorOut
from sightscan.api.uploads import read_photo_upload
from sightscan.errors import NotFoundError
from sightscan.images import inspect_image
from sightscan.inference import Detector
from sightscan.warehouse import Warehouse
from sightscan.warehouse.marts import current_model

router = APIRouter(prefix="/api/cities", tags=["detect"])
UPLOAD_FORM: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            }
        }
    }
}


class DetectorCache:
    """Loaded detectors by model blob key; a new version is loaded once, old ones dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detectors: dict[str, Detector] = {}

    def get(self, warehouse: Warehouse, city: str) -> Detector:
        """The detector of the city's current model."""
        with warehouse.transaction() as session:
            model = current_model(session, city)
            if model is None:
                raise NotFoundError(f"no model for {city!r} yet")
            key = model.blob_key
        with self._lock:
            if key not in self._detectors:
                if len(self._detectors) >= 16:
                    self._detectors.pop(next(iter(self._detectors)))
                self._detectors[key] = Detector.from_bytes(warehouse.blobs.get(key))
            return self._detectors[key]


@router.post(
    "/{city}/detect",
    dependencies=[RateLimited],
    openapi_extra=UPLOAD_FORM,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 413: {"model": ErrorOut}},
)
async def detect(
    city: CityDep, request: Request, warehouse: WarehouseDep, settings: SettingsDep
) -> dict[str, Any]:
    """Photo (field `image`) in; {"detections": [{"label", "score", "box"}]} out."""
    upload = await read_photo_upload(request, max_file_bytes=settings.sightscan_max_upload_bytes)
    data = upload.data
    inspect_image(
        data,
        max_bytes=settings.sightscan_max_upload_bytes,
        max_pixels=settings.sightscan_max_image_pixels,
    )
    cache: DetectorCache = request.app.state.detectors
    detector = await run_in_threadpool(cache.get, warehouse, city)
    detections = await run_in_threadpool(detector.detect, data)
    return {"image": upload.filename, "detections": [d.as_dict() for d in detections]}
