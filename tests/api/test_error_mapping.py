"""Every SightScan error reaches a client with the status that fits and its one-line message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sightscan.api.errors import status_for
from sightscan.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    ExternalServiceError,
    InvalidImageError,
    InvalidInputError,
    ModelFormatError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    SightScanError,
    StorageError,
    TrainingError,
)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInputError, 400), (InvalidImageError, 400), (PayloadTooLargeError, 413),
        (NotFoundError, 404), (ConflictError, 409), (TrainingError, 409),
        (QuotaExceededError, 429), (ExternalServiceError, 502), (ModelFormatError, 500),
        (StorageError, 503), (DatabaseUnavailableError, 503), (ConfigurationError, 500),
        (SightScanError, 500),
    ],
)
def test_each_error_class_has_its_status(error: type[SightScanError], status: int) -> None:
    assert status_for(error("x")) == status


def test_a_stored_model_that_is_not_a_model_answers_with_its_reason(
    client: TestClient, publish_model: Callable[..., Any], make_image: Callable[..., bytes]
) -> None:
    publish_model("Berlin", b"not an onnx file")
    response = client.post("/api/cities/Berlin/detect",
                           files={"image": ("a.jpg", make_image(1), "image/jpeg")})
    assert response.status_code == 500
    assert "not a SightScan model" in response.json()["detail"]
