"""MTS: clean labels, assemble a training set, train, evaluate and export a detector (ONNX).

Public names are imported lazily: importing the package (or a torch-free module such as
`sightscan.training.names`) does not pull in torch; only the name you use loads its module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "merge_label_names": "names",
    "normalise_name": "names",
    "TrainingImage": "dataset",
    "TrainingSet": "dataset",
    "assemble_training_set": "dataset",
    "group_near_duplicates": "duplicates",
    "TrainConfig": "trainer",
    "TrainedModel": "trainer",
    "TrainProgress": "trainer",
    "train_detector": "trainer",
    "console_progress": "trainer",
    "Metrics": "evaluation",
    "evaluate": "evaluation",
    "is_not_worse": "evaluation",
    "export_onnx": "export",
    "read_metadata": "export",
    "set_metadata": "export",
    "render_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"sightscan.training.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'sightscan.training' has no attribute {name!r}")
