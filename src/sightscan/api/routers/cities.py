"""Cities: the supported list, requests for a new city, and user photos for training."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi import Path as PathParam
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from sightscan.api.decoding import DecodeGate, peek_pixels
from sightscan.api.deps import (
    CITY_SCHEMA,
    CityDep,
    OptionalKey,
    RateLimited,
    SchedulerDep,
    SettingsDep,
    WarehouseDep,
    check_api_key,
    client_key,
    operator_key,
)
from sightscan.api.schemas import (
    CitiesOut,
    CityRequestOut,
    CitySourceIn,
    CityStatusOut,
    ErrorOut,
    ImageUploadOut,
    parse_seed_labels,
)
from sightscan.api.uploads import PRINTABLE_TEXT, photo_form, read_photo_upload
from sightscan.config import Settings
from sightscan.crawler.folder import folder_under_root
from sightscan.detections import Label
from sightscan.errors import ConflictError
from sightscan.images import ImageInfo, inspect_image, sha256_hex
from sightscan.pipeline import request_city_crawl
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import resolve_city
from sightscan.warehouse.city_status import city_status
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.marts import supported_cities
from sightscan.warehouse.models import City, FactSight, ImageRow

router = APIRouter(prefix="/api/cities", tags=["cities"])


RawCity = Annotated[
    str,
    PathParam(
        description="City name in any known spelling (München, Munich, MUNICH).",
        json_schema_extra=CITY_SCHEMA,
    ),
]
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
    city: RawCity,
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
) -> CityRequestOut:
    """Ask for a city the gazetteer knows (400 with suggestions otherwise); the request that
    brings the number of distinct clients to the threshold starts the crawl. Operators (API
    key) may force any name."""
    if force or source is not None:
        check_api_key(request, settings, presented)
    operator = operator_key(request, settings, presented)
    folder = None
    if source is not None and source.photo_folder is not None:
        folder = str(folder_under_root(source.photo_folder, settings.sightscan_photo_root))
    outcome = request_city_crawl(
        warehouse,
        scheduler,
        settings,
        city=city,
        force=force,
        photo_folder=folder,
        sights=source.sights if source else None,
        client_hash=None if operator else hash_client(settings, client_key(request)),
    )
    return CityRequestOut(**asdict(outcome))


@router.post(
    "/{city}/image",
    status_code=201,
    response_model=ImageUploadOut,
    dependencies=[RateLimited],
    openapi_extra=UPLOAD_FORM,
    responses=ERRORS
    | {200: {"model": ImageUploadOut, "description": "duplicate"}, 409: {"model": ErrorOut},
       413: {"model": ErrorOut}},
)
async def upload_image(
    city: RawCity,
    request: Request,
    response: Response,
    warehouse: WarehouseDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Store a user photo (field `image`) with optional seed labels for training; the city
    must be stored already or known to the gazetteer (400 with suggestions otherwise)."""
    city = await run_in_threadpool(_known_city, warehouse, city)
    upload = await read_photo_upload(request, max_file_bytes=settings.sightscan_max_upload_bytes)
    data = upload.data
    labels = parse_seed_labels(upload.fields.get("labels"))
    sight_field = upload.fields.get("sight")
    sight = " ".join(sight_field.split())[:200] if sight_field else None
    # A known photo is answered from its hash: no decode, no budget, no write.
    known = await run_in_threadpool(_stored_image, warehouse, data)
    if known is not None:  # a photo is kept once, with the city it first came with
        return _duplicate(known, city, response)
    gate: DecodeGate = request.app.state.decode_gate
    info = await gate.run(peek_pixels(data), _inspect, data, settings.sightscan_max_image_pixels)
    image_id, created = await run_in_threadpool(
        _store_upload, warehouse, city, data, info, labels, sight
    )
    if not created:  # stored by a concurrent upload since the look-up above
        known = await run_in_threadpool(_stored_image, warehouse, data)
        return _duplicate(known or (image_id, city), city, response)
    return {"image_id": image_id, "city": city, "duplicate": False}


def _duplicate(known: tuple[int, str | None], city: str, response: Response) -> dict[str, Any]:
    """The answer to a photo stored already: 200 with the city it came with, or 409 for a
    photo of the everyday pool (no city)."""
    image_id, stored_city = known
    if stored_city is None:
        raise ConflictError(
            "this photo is in the everyday pool (photos that show no sight, negatives for "
            f"every city's training), so it cannot be a photo of {city}"
        )
    response.status_code = 200
    return {"image_id": image_id, "city": stored_city, "duplicate": True}


def _stored_image(warehouse: Warehouse, data: bytes) -> tuple[int, str | None] | None:
    """The id and city of the stored photo with these bytes (no city: an everyday-pool
    photo), None when there is none."""
    query = (
        select(ImageRow.id, City.name)
        .outerjoin(FactSight, FactSight.image_id == ImageRow.id)
        .outerjoin(City, City.id == FactSight.city_id)
        .where(ImageRow.sha256 == sha256_hex(data))
    )
    with warehouse.transaction() as session:
        row = session.execute(query).first()
    return (row[0], row[1]) if row is not None else None


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


def _known_city(warehouse: Warehouse, raw: str) -> str:
    with warehouse.transaction() as session:
        return resolve_city(session, raw, known_only=True)


def hash_client(settings: Settings, key: str) -> str:
    """A keyed hash of the rate limiter's client key: requests are told apart per client
    without storing an address (SIGHTSCAN_CLIENT_HASH_KEY, else the API key, is the key)."""
    secret = settings.sightscan_client_hash_key or settings.sightscan_api_key
    material = secret.get_secret_value() if secret is not None else "sightscan-client"
    return hmac.new(material.encode(), key.encode(), hashlib.sha256).hexdigest()


@router.get(
    "/{city}/status",
    response_model=CityStatusOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
def status(city: CityDep, warehouse: WarehouseDep, settings: SettingsDep) -> dict[str, Any]:
    """Where a requested city stands: requests so far and needed, stage, error, model version."""
    with warehouse.transaction() as session:
        return city_status(
            session, city, requests_needed=settings.sightscan_city_request_threshold
        )
