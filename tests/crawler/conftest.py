"""Fixtures for crawler tests: a fake server on loopback and a real httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypedDict

import httpx
import pytest

from fakes.server import fake_server  # noqa: F401  (fixture)
from sightscan.http import make_client


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """SightScan's client with short timeouts, closed after the test."""
    with make_client(timeout=2.0) as http_client:
        yield http_client


class Backoff(TypedDict):
    """Retry delays for `request_with_retries` / `request_json`."""

    backoff: float
    max_backoff: float


@pytest.fixture
def fast() -> Backoff:
    """Retry settings that keep tests fast."""
    return {"backoff": 0.001, "max_backoff": 0.01}
