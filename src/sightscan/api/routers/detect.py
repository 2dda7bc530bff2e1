"""Detection on the server, for clients that cannot run the model themselves."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request

from sightscan.api.decoding import DecodeGate, peek_pixels
from sightscan.api.deps import CityDep, RateLimited, SettingsDep, WarehouseDep
from sightscan.api.schemas import ErrorOut
from sightscan.api.uploads import photo_form, read_photo_upload
from sightscan.detections import Detection
from sightscan.errors import NotFoundError
from sightscan.images import inspect_image
from sightscan.inference import Detector
from sightscan.warehouse import Warehouse
from sightscan.warehouse.marts import current_model

router = APIRouter(prefix="/api/cities", tags=["detect"])
UPLOAD_FORM = photo_form({})


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
    responses={code: {"model": ErrorOut} for code in (400, 404, 413, 429)},
)
async def detect(
    city: CityDep, request: Request, warehouse: WarehouseDep, settings: SettingsDep
) -> dict[str, Any]:
    """Photo (field `image`) in; {"detections": [{"label", "score", "box"}]} out."""
    upload = await read_photo_upload(request, max_file_bytes=settings.sightscan_max_upload_bytes)
    cache: DetectorCache = request.app.state.detectors
    gate: DecodeGate = request.app.state.decode_gate
    detections = await gate.run(
        peek_pixels(upload.data),
        _detect,
        cache,
        warehouse,
        city,
        upload.data,
        settings.sightscan_max_image_pixels,
    )
    return {"image": upload.filename, "detections": [d.as_dict() for d in detections]}


def _detect(
    cache: DetectorCache, warehouse: Warehouse, city: str, data: bytes, max_pixels: int
) -> list[Detection]:
    """Check, decode and run the city's model: all of it in one worker thread of the gate."""
    inspect_image(data, max_pixels=max_pixels)
    return list(cache.get(warehouse, city).detect(data))
