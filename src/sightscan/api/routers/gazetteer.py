"""The offline gazetteer: search known cities as the user types (the web client's picker)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from sightscan.gazetteer import get_gazetteer

router = APIRouter(prefix="/api/gazetteer", tags=["cities"])


class GazetteerCityOut(BaseModel):
    key: str = Field(description="The city's key: use it in /api/cities/{city}/... paths.")
    name: str
    country: str = Field(description="ISO 3166 country code.")
    population: int


class GazetteerOut(BaseModel):
    cities: list[GazetteerCityOut]


@router.get("", response_model=GazetteerOut)
def search(
    q: Annotated[str, Query(min_length=1, max_length=100, description="Name or its beginning.")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, list[dict[str, Any]]]:
    """Known cities whose name or alternate name starts with or resembles `q`, most populous
    first."""
    return {"cities": [city.as_dict() for city in get_gazetteer().search(q, limit)]}
