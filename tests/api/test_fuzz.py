"""Fuzzing the label and city parsers through the API: never a 5xx, a refusal stores nothing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Snapshot = Callable[[], dict[str, int]]
pytestmark = pytest.mark.slow
FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Any text at all, JSON that looks like labels, and JSON nested deeper than anyone needs.
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
seed_labels = st.lists(
    st.fixed_dictionaries(
        {"sightName": st.text(max_size=250)},
        optional={key: st.floats(allow_nan=True) | st.integers() | st.text(max_size=3)
                  for key in ("ulx", "uly", "lrx", "lry")},
    ),
    max_size=60,
)
label_fields = st.one_of(
    st.text(),
    json_values.map(json.dumps),
    seed_labels.map(json.dumps),
    seed_labels.map(lambda labels: json.dumps(labels, ensure_ascii=False)),
    st.integers(1, 5000).map(lambda depth: "[" * depth + "]" * depth),
)


def _expect_no_5xx_and_nothing_stored_on_refusal(
    response: Any, before: dict[str, int], after: dict[str, int]
) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)
        assert after == before


def test_fuzzed_labels_never_answer_5xx_and_refusals_store_nothing(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    seeds = itertools.count(1)

    @FUZZ
    @given(labels=label_fields, sight=st.text(max_size=300))
    def upload(labels: str, sight: str) -> None:
        before = snapshot()
        response = client.post("/api/cities/Berlin/image",
                               files={"image": ("a.jpg", make_image(next(seeds)), "image/jpeg")},
                               data={"labels": labels, "sight": sight})
        _expect_no_5xx_and_nothing_stored_on_refusal(response, before, snapshot())

    upload()


def test_fuzzed_city_names_never_answer_5xx_and_refusals_store_nothing(
    client: TestClient, snapshot: Snapshot
) -> None:
    @FUZZ
    @given(city=st.text(min_size=1, max_size=400))
    def ask(city: str) -> None:
        path = quote(city, safe="")
        before = snapshot()
        added = client.post(f"/api/cities/{path}/add")
        _expect_no_5xx_and_nothing_stored_on_refusal(added, before, snapshot())
        version = client.get(f"/api/cities/{path}/model/version")
        assert version.status_code < 500, version.text
        jobs = client.get("/api/jobs", params={"city": city})
        assert jobs.status_code < 500, jobs.text

    ask()
