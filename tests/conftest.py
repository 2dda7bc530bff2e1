"""Fixtures for every test: no SightScan setting leaks in from the host's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sightscan.config import Settings, get_settings

SETTING_VARIABLES = frozenset(name.upper() for name in Settings.model_fields)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove every variable SightScan reads; settings are read afresh in each test."""
    for variable in list(os.environ):
        if variable.upper() in SETTING_VARIABLES:
            monkeypatch.delenv(variable)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
