"""A city's current model: bytes (with ETag), version number and metadata."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from sightscan.api.deps import CityDep, WarehouseDep
from sightscan.api.schemas import ErrorOut, ModelMetadataOut
from sightscan.errors import NotFoundError, StorageError
from sightscan.jobtext import METRICS_EXPLAINED
from sightscan.warehouse.marts import current_model
from sightscan.warehouse.models import ModelRow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/cities", tags=["models"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 400: {"model": ErrorOut}}
MODEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {}},
        "description": "The ONNX model; the ETag is its sha256.",
    },
    304: {"description": "Not modified (If-None-Match matched)."},
    **NOT_FOUND,
}


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header matches `etag` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def content_disposition(filename: str) -> str:
    """An attachment header with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/{city}/model",
    response_class=Response,
    responses=MODEL_RESPONSES,
)
def download_model(city: CityDep, request: Request, warehouse: WarehouseDep) -> Response:
    """The newest model of the city; 304 when the client already has it."""
    with warehouse.transaction() as session:
        model = current_model(session, city)
        if model is None:
            raise NotFoundError(f"no model for {city!r} yet")
        blob_key, version = model.blob_key, model.version
    etag = f'"{blob_key}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Model-Version": str(version)}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    try:
        data = warehouse.blobs.get(blob_key)
    except NotFoundError:
        log.error("model blob %s of %s v%d is missing", blob_key[:12], city, version)
        raise StorageError(f"the model file of {city!r} is unavailable") from None
    headers["Content-Disposition"] = content_disposition(f"{city}-v{version}.onnx")
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get("/{city}/model/version", response_model=int, responses={400: {"model": ErrorOut}})
def model_version(city: CityDep, warehouse: WarehouseDep) -> int:
    """The newest model version of the city, -1 when it has none."""
    with warehouse.transaction() as session:
        model = current_model(session, city)
        return model.version if model is not None else -1


@router.get("/{city}/model/metadata", response_model=ModelMetadataOut, responses=NOT_FOUND)
def model_metadata(city: CityDep, warehouse: WarehouseDep) -> ModelMetadataOut:
    """What the current model knows (sights, input size, ...), how well it did, and what
    each of those metrics means."""
    with warehouse.transaction() as session:
        model = current_model(session, city)
        row = session.get(ModelRow, model.model_id) if model is not None else None
        if model is None or row is None:
            raise NotFoundError(f"no model for {city!r} yet")
        return ModelMetadataOut(
            city=city,
            version=row.version,
            sha256=row.blob_key,
            size_bytes=row.size_bytes,
            labelled_images=row.labelled_images,
            created_at=row.created_at.isoformat(),
            metadata=row.meta or {},
            metrics=row.metrics or {},
            metrics_explained=METRICS_EXPLAINED,
        )
