"""Build the configured labeller (SIGHTSCAN_LABELLER) from a typed configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from sightscan.config import LabellerName, Settings
from sightscan.errors import ConfigurationError
from sightscan.labelling.base import Labeller
from sightscan.labelling.vision import ReserveCall, VisionLabeller
from sightscan.labelling.weak import Detect, WeakLabeller

LABELLERS: tuple[str, ...] = get_args(LabellerName)


@dataclass(frozen=True, slots=True)
class LabellerConfig:
    """Which labeller and what it needs from the settings; built once per labelling run."""

    name: LabellerName = "weak"
    vision_endpoint: str | None = None
    credentials_file: Path | None = None

    def __post_init__(self) -> None:
        if self.name not in LABELLERS:
            raise ConfigurationError(
                f"SIGHTSCAN_LABELLER: expected one of {', '.join(LABELLERS)}, got {self.name!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> LabellerConfig:
        """SIGHTSCAN_LABELLER, SIGHTSCAN_VISION_ENDPOINT and GOOGLE_APPLICATION_CREDENTIALS."""
        return cls(
            settings.sightscan_labeller,
            settings.sightscan_vision_endpoint,
            settings.google_application_credentials,
        )


def make_labeller(
    config: LabellerConfig,
    *,
    reserve_call: ReserveCall | None = None,
    detect: Detect | None = None,
) -> Labeller:
    """The configured labeller; `vision` needs `reserve_call` (the per-city hard cap)."""
    if config.name == "weak":
        return WeakLabeller(detect)
    if reserve_call is None:
        raise ConfigurationError("SIGHTSCAN_LABELLER: `vision` needs a call cap (reserve_call)")
    return VisionLabeller(
        reserve_call, endpoint=config.vision_endpoint, credentials_file=config.credentials_file
    )
