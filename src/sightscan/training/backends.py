"""The trainer backends behind SIGHTSCAN_TRAINER: efficientnet (default) or yolo (optional).

Both have the interface of `train_detector(training_set, config, progress=None, *, city=None)
-> TrainedModel`. Selecting a backend imports nothing heavy: the chosen trainer module is
imported on the first call, and ultralytics only inside the yolo trainer itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sightscan.errors import ConfigurationError

if TYPE_CHECKING:
    from sightscan.training.dataset import TrainingSet
    from sightscan.training.trainer import ProgressCallback, TrainConfig, TrainedModel

TRAINERS = ("efficientnet", "yolo")
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


def select_trainer(name: str) -> TrainerFunction:
    """The train function of a backend name; ConfigurationError for unknown or uninstalled ones."""
    key = name.strip().lower()
    if key == "efficientnet":
        return _efficientnet
    if key == "yolo":
        if not _has_ultralytics():
            raise ConfigurationError(
                "SIGHTSCAN_TRAINER: yolo needs ultralytics: pip install 'sightscan[yolo]'")
        return _yolo
    raise ConfigurationError(f"SIGHTSCAN_TRAINER: expected one of {list(TRAINERS)}, got {name!r}")
