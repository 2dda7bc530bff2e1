"""Cities: the supported list, requests for a new city, and user photos for training."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from sightscan.api.decoding import DecodeGate, peek_pixels
from sightscan.api.deps import (
    CityDep,
    OptionalKey,
    RateLimited,
    SchedulerDep,
    SettingsDep,
    WarehouseDep,
    check_api_key,
)
from sightscan.api.schemas import (
    CitiesOut,
    CityRequestOut,
    CitySourceIn,
    ErrorOut,
    ImageUploadOut,
    parse_seed_labels,
)
from sightscan.api.uploads import PRINTABLE_TEXT, photo_form, read_photo_upload
from sightscan.crawler.folder import folder_under_root
from sightscan.detections import Label
from sightscan.images import ImageInfo, inspect_image, sha256_hex
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import request_city
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.marts import supported_cities
from sightscan.warehouse.models import ImageRow

router = APIRouter(prefix="/api/cities", tags=["cities"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    429: {"model": ErrorOut},
}
UPLOAD_FORM = photo_form(
    {
        "labels": {
            "type": "string",
            "description": 'JSON list of {"ulx", "uly", "lrx", "lry", "sightName"}, '
            "coordinates relative to the image",
        }
        | PRINTABLE_TEXT,
        "sight": {"type": "string", "description": "The sight the photo shows."} | PRINTABLE_TEXT,
    }
)


@router.get("/", response_model=CitiesOut)
def list_cities(warehouse: WarehouseDep) -> dict[str, list[str]]:
    """Cities that have a model, alphabetically."""
    with warehouse.transaction() as session:
        return {"cities": supported_cities(session)}


@router.post(
    "/{city}/add",
    response_model=CityRequestOut,
    dependencies=[RateLimited],
    responses=ERRORS | {401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)
def add_city(
    city: CityDep,
    request: Request,
    warehouse: WarehouseDep,
    scheduler: SchedulerDep,
    settings: SettingsDep,
    presented: OptionalKey = None,
    force: Annotated[
        bool, Query(description="Operators (API key): crawl now, ignoring the request threshold.")
    ] = False,
    source: Annotated[
        CitySourceIn | None,
        Body(description="Operators (API key): where the crawl finds sights and photos."),
    ] = None,
) -> dict[str, Any]:
    """Ask for a city; the request that reaches the threshold starts the crawl."""
    if force or source is not None:
        check_api_key(request, settings, presented)
    folder = None
    if source is not None and source.photo_folder is not None:
        folder = str(folder_under_root(source.photo_folder, settings.sightscan_photo_root))
    with warehouse.transaction() as session:
        result = request_city(
            session,
            city=city,
            force=force,
            threshold=settings.sightscan_city_request_threshold,
            photo_folder=folder,
            sights=source.sights if source else None,
        )
    job_id = None
    if result.crawl_started or force:
        job_id = scheduler.submit("crawl", result.city)
    return {
        "city": result.city,
        "requests": result.count,
        "crawl_started": result.crawl_started or job_id is not None,
        "job_id": job_id,
    }


@router.post(
    "/{city}/image",
    status_code=201,
    response_model=ImageUploadOut,
    dependencies=[RateLimited],
    openapi_extra=UPLOAD_FORM,
    responses=ERRORS
    | {200: {"model": ImageUploadOut, "description": "duplicate"}, 413: {"model": ErrorOut}},
)
async def upload_image(
    city: CityDep,
    request: Request,
    response: Response,
    warehouse: WarehouseDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Store a user photo (field `image`) with optional seed labels for training."""
    upload = await read_photo_upload(request, max_file_bytes=settings.sightscan_max_upload_bytes)
    data = upload.data
    labels = parse_seed_labels(upload.fields.get("labels"))
    sight_field = upload.fields.get("sight")
    sight = " ".join(sight_field.split())[:200] if sight_field else None
    # A known photo is answered from its hash: no decode, no budget, no write.
    known = await run_in_threadpool(_stored_image_id, warehouse, data)
    if known is not None:
        response.status_code = 200
        return {"image_id": known, "city": city, "duplicate": True}
    gate: DecodeGate = request.app.state.decode_gate
    info = await gate.run(peek_pixels(data), _inspect, data, settings.sightscan_max_image_pixels)
    added = await run_in_threadpool(_store_upload, warehouse, city, data, info, labels, sight)
    if not added[1]:
        response.status_code = 200
    return {"image_id": added[0], "city": city, "duplicate": not added[1]}


def _stored_image_id(warehouse: Warehouse, data: bytes) -> int | None:
    digest = sha256_hex(data)
    with warehouse.transaction() as session:
        return session.scalar(select(ImageRow.id).where(ImageRow.sha256 == digest))


def _inspect(data: bytes, max_pixels: int) -> ImageInfo:
    return inspect_image(data, max_pixels=max_pixels)


def _store_upload(
    warehouse: Warehouse,
    city: str,
    data: bytes,
    info: ImageInfo,
    labels: list[Label],
    sight: str | None,
) -> tuple[int, bool]:
    with warehouse.transaction() as session:
        added = add_image(
            session,
            warehouse.blobs,
            NewImage(
                data=data,
                city=city,
                sight=sight,
                origin="user",
                labels=labels,
                label_source="user",
                info=info,  # checked just now: the warehouse does not decode it again
            ),
            max_pixels=info.width * info.height,
        )
    return added.image_id, added.created
