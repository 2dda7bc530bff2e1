"""The OpenAPI document as the API behaves: one error body, statuses every route can answer.

FastAPI documents 422 with its own list-of-errors schema, but every error of this API,
422 included, is {"detail": str} (`errors.py`). The middleware in front of every route
answers 413 (body too large) and 500 (unexpected), and any database call 503; those are
added to every operation here, once, instead of on each route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from sightscan.api.schemas import ErrorOut

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
EVERY_ROUTE = {
    "413": "Request body too large (checked before it is read).",
    "500": "Unexpected server error; the message says no more.",
    "503": "The warehouse database or blob store is unavailable.",
}
CITY_ROUTE = {"400": "Unusable city name (no letter or digit, or too long)."}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _takes_city(operation: dict[str, Any]) -> bool:
    return any(p.get("name") == "city" for p in operation.get("parameters", []))


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a generated document so that its error responses match `errors.py`."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorOut"] = ErrorOut.model_json_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error("Request does not match the documented parameters.")
            extra = EVERY_ROUTE | (CITY_ROUTE if _takes_city(operation) else {})
            for status, description in extra.items():
                responses.setdefault(status, _error(description))
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the rewritten document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
