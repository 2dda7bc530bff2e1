"""The trainer backends behind SIGHTSCAN_TRAINER: efficientnet (default) or yolo (optional).

Both have the interface of `train_detector(training_set, config, progress=None, *, city=None)
-> TrainedModel`. Selecting a backend imports nothing heavy: the chosen trainer module is
imported on the first call, and ultralytics only inside the yolo trainer itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, get_args

from sightscan.config import Settings, TrainerName
from sightscan.errors import ConfigurationError

if TYPE_CHECKING:
    from sightscan.training.dataset import TrainingSet
    from sightscan.training.trainer import ProgressCallback, TrainConfig, TrainedModel

TRAINERS: tuple[str, ...] = get_args(TrainerName)
TrainerFunction = Callable[..., "TrainedModel"]


def _efficientnet(training_set: TrainingSet, config: TrainConfig,
                  progress: ProgressCallback | None = None, *, city: str | None = None,
                  **kwargs: Any) -> TrainedModel:
    """The default EfficientNet-Lite0 trainer (sightscan.training.trainer.train_detector)."""
    from sightscan.training.trainer import train_detector

    return train_detector(training_set, config, progress, city=city, **kwargs)


def _yolo(training_set: TrainingSet, config: TrainConfig,
          progress: ProgressCallback | None = None, *, city: str | None = None,
          **kwargs: Any) -> TrainedModel:
    """The optional ultralytics YOLO trainer (sightscan.training.yolo.train_detector_yolo)."""
    from sightscan.training.yolo import train_detector_yolo

    return train_detector_yolo(training_set, config, progress, city=city, **kwargs)


def _has_ultralytics() -> bool:
    """Whether ultralytics can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec("ultralytics") is not None
    except ValueError:  # already imported without a spec (e.g. a stand-in module)
        return True


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Which trainer backend (SIGHTSCAN_TRAINER) and its own options; built once per run."""

    name: TrainerName = "efficientnet"
    yolo_weights: str = "yolo11n.pt"

    def __post_init__(self) -> None:
        if self.name not in TRAINERS:
            raise ConfigurationError(
                f"SIGHTSCAN_TRAINER: expected one of {', '.join(TRAINERS)}, got {self.name!r}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> BackendConfig:
        """SIGHTSCAN_TRAINER and SIGHTSCAN_YOLO_WEIGHTS."""
        return cls(settings.sightscan_trainer, settings.sightscan_yolo_weights)


def select_trainer(config: BackendConfig) -> TrainerFunction:
    """The train function of the configured backend; ConfigurationError when not installed."""
    if config.name == "efficientnet":
        return _efficientnet
    if not _has_ultralytics():
        raise ConfigurationError(
            "SIGHTSCAN_TRAINER: yolo needs ultralytics: pip install 'sightscan[yolo]'")
    return partial(_yolo, weights=config.yolo_weights)
