"""Response bodies of the public API (for OpenAPI) and the seed's label format for uploads."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from sightscan.detections import Box, Label
from sightscan.errors import InvalidInputError
from sightscan.text import SafeText, loads_bounded

MAX_LABELS_PER_UPLOAD = 50
_BOX_KEYS = ("ulx", "uly", "lrx", "lry")


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, in one line.")
    suggestions: list[str] | None = Field(
        default=None, description="Closest known city names, only for an unknown city."
    )


class CitiesOut(BaseModel):
    cities: list[str] = Field(description="Cities with a model, alphabetically.")


class ImageUploadOut(BaseModel):
    image_id: int
    city: str
    duplicate: bool = Field(description="True when the same bytes were stored before.")


class CityRequestOut(BaseModel):
    city: str
    requests: int = Field(
        description="How many distinct clients (and operator requests) asked for the city."
    )
    crawl_started: bool = Field(description="True when this request queued the crawl.")
    job_id: int | None = Field(None, description="The queued crawl job, when one was queued.")


class LabelJobOut(BaseModel):
    city: str
    mode: str = Field(description="'new' (capped paid labelling) or 'existing'.")
    job_id: int | None = Field(description="The queued job; null when one is already queued.")


class LogOut(BaseModel):
    log: list[dict[str, Any]]


class JobsOut(BaseModel):
    jobs: list[dict[str, Any]]
    gpu_instance: dict[str, Any] | None = Field(
        None, description="The on-demand GPU instance: {events: newest first}, null if none."
    )


class ModelMetadataOut(BaseModel):
    city: str
    version: int
    sha256: str
    size_bytes: int
    labelled_images: int
    created_at: str
    metadata: dict[str, Any]
    metrics: dict[str, Any]
    # What each metric means (why mAP is 0.0 for a city trained from photos without boxes).
    metrics_explained: dict[str, str] = {}


class HealthOut(BaseModel):
    status: str
    database: str


def parse_seed_labels(raw: str | None) -> list[Label]:
    """Labels from the seed's JSON list of BoundingBoxLabels {ulx, uly, lrx, lry, sightName}.

    Coordinates are relative to the image size; a label without any coordinate key names a
    sight on the photo without a box. Raises InvalidInputError (nothing stored) otherwise.
    """
    if raw is None or not raw.strip():
        return []
    entries = loads_bounded(raw, "`labels` (a JSON list of {ulx, uly, lrx, lry, sightName})")
    if not isinstance(entries, list):
        raise InvalidInputError(f"expected `labels` as a JSON list, got {type(entries).__name__}")
    if len(entries) > MAX_LABELS_PER_UPLOAD:
        raise InvalidInputError(
            f"expected at most {MAX_LABELS_PER_UPLOAD} labels per photo, got {len(entries)}"
        )
    labels: list[Label] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInputError(
                f"expected label {index} as an object, got {type(entry).__name__}"
            )
        name = entry.get("sightName", entry.get("label", entry.get("name")))
        if not isinstance(name, str):
            raise InvalidInputError(f"expected label {index} to have a `sightName` text")
        box = None
        if any(key in entry for key in _BOX_KEYS):
            values = [entry.get(key) for key in _BOX_KEYS]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise InvalidInputError(
                    f"expected numbers ulx, uly, lrx, lry in label {index}, got {values!r}"[:200]
                )
            box = Box.from_seed(entry)
        labels.append(Label(" ".join(name.split()), box))
    return labels


class CitySourceIn(BaseModel):
    """Operator-only: the sights of a city and/or a server folder of photos (one sub-folder
    per sight) for its crawl."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored

    sights: list[Annotated[SafeText, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=100
    )
    photo_folder: SafeText | None = Field(default=None, max_length=1000)


class CityStatusOut(BaseModel):
    city: str = Field(description="The city's key (its normalised gazetteer name).")
    name: str = Field(description="Display name.")
    requests: int = Field(description="Distinct clients (or operator requests) that asked.")
    requests_needed: int = Field(description="Distinct clients needed to start the crawl.")
    stage: str = Field(description="requested | crawl | label | train | ready | failed")
    state: str | None = Field(description="The stage's job: queued | running | done | failed.")
    error: str | None = Field(description="Why the last job failed, in plain words.")
    model_version: int = Field(description="Newest published model version, -1 when none.")
