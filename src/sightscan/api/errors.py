"""Exception handlers: every error leaves the API as JSON {"detail": "message"}, never a trace.

SightScanError subclasses map to status codes here, once; unexpected errors are logged and
answered with 500 {"detail": "internal error"} by `CatchAllMiddleware`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sightscan.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    ExternalServiceError,
    InvalidInputError,
    ModelFormatError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    SightScanError,
    StorageError,
    TrainingError,
)

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[SightScanError], int], ...] = (
    (PayloadTooLargeError, 413),
    (InvalidInputError, 400),  # InvalidImageError included
    (NotFoundError, 404),
    (ConflictError, 409),  # a concurrent writer got there first, or the stored data says no
    (TrainingError, 409),  # refused in the city's current state (too few labels, a run going)
    (QuotaExceededError, 429),
    (ExternalServiceError, 502),
    (ModelFormatError, 500),  # the stored model is unusable: the server's fault, not the client's
    (StorageError, 503),
    (DatabaseUnavailableError, 503),
    (ConfigurationError, 500),
)


def status_for(exc: SightScanError) -> int:
    """The HTTP status of a SightScan error (500 for the ones without a client cause)."""
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error body shape of the API."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _sightscan_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SightScanError)
    status = status_for(exc)
    if status >= 500:
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    response = error_response(status, str(exc) or type(exc).__name__)
    suggestions = getattr(exc, "suggestions", None)
    if suggestions is not None:  # UnknownCityError: the closest known city names
        response = JSONResponse(
            {"detail": str(exc), "suggestions": list(suggestions)}, status_code=status
        )
    return response


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return error_response(422, "invalid request")
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return error_response(422, f"{where}: {first.get('msg', 'invalid value')}")


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", type(exc).__name__)
    return error_response(503, "database unavailable")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers and the catch-all middleware on `app`."""
    app.add_exception_handler(SightScanError, _sightscan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_middleware(CatchAllMiddleware)


class CatchAllMiddleware:
    """Turn any unhandled exception into 500 {"detail": "internal error"} and log it once.

    Unlike an `Exception` handler (which Starlette re-raises after answering), this keeps
    the trace in the log and out of the response, and does not crash the test client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(500, "internal error")
            await response(scope, receive, send)
