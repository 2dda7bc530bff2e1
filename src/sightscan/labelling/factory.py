"""Build the configured labeller by name (SIGHTSCAN_LABELLER)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sightscan.errors import ConfigurationError
from sightscan.labelling.base import Labeller
from sightscan.labelling.vision import ReserveCall, VisionLabeller
from sightscan.labelling.weak import Detect, WeakLabeller

LABELLERS = ("weak", "vision")


def make_labeller(
    name: str,
    *,
    reserve_call: ReserveCall | None = None,
    detect: Detect | None = None,
    sightscan_vision_endpoint: str | None = None,
    google_application_credentials: Path | None = None,
    **_ignored: Any,
) -> Labeller:
    """The labeller called `name`; `vision` needs `reserve_call` (the per-city hard cap)."""
    name = name.strip().lower()
    if name == "weak":
        return WeakLabeller(detect)
    if name == "vision":
        if reserve_call is None:
            raise ConfigurationError("SIGHTSCAN_LABELLER: `vision` needs a call cap (reserve_call)")
        return VisionLabeller(
            reserve_call,
            endpoint=sightscan_vision_endpoint,
            credentials_file=google_application_credentials,
        )
    raise ConfigurationError(
        f"SIGHTSCAN_LABELLER: expected one of {', '.join(LABELLERS)}, got {name!r}"
    )
