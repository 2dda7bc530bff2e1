"""The OpenAPI document matches the API's behaviour: schemathesis, all checks, in-process."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.result import Err, Ok

from .conftest import image_bytes

pytestmark = pytest.mark.slow
# Per operation and run; about 30 s for the whole API on a small CI machine.
EXAMPLES = int(os.environ.get("SIGHTSCAN_OPENAPI_EXAMPLES", "20"))


@pytest.fixture
def db_backend() -> str:
    """SQLite only: the document does not depend on the backend, and this keeps CI short."""
    return "sqlite"


def with_real_photo(case: Any) -> Any:
    """What JSON Schema cannot say about a valid request: a city to request or send photos
    for is one the gazetteer knows, `image` decodes as a photo and `labels` is JSON text of
    a label list. Valid requests get a real city, photo and label list; everything else in
    them is still generated."""
    if case.path_parameters and "city" in case.path_parameters:
        case.path_parameters["city"] = "Berlin"
    if isinstance(case.body, dict) and "image" in case.body:
        case.body["image"] = image_bytes(len(str(case.body)), fmt="PNG")
        if "labels" in case.body:
            case.body["labels"] = json.dumps(
                [{"ulx": 0.1, "uly": 0.1, "lrx": 0.9, "lry": 0.9, "sightName": "Dom"}])
    return case


def test_every_operation_answers_as_documented(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), [r.err() for r in results if isinstance(r, Err)]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(GenerationMode.POSITIVE).map(with_real_photo)
               | operation.as_strategy(GenerationMode.NEGATIVE))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate()

        try:
            answers_as_documented()
        except (Exception, BaseExceptionGroup) as exc:  # every operation that disagrees
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
