"""Shared fixtures of the MTS tests: one small detector trained on generated photos."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from mts_synthetic import make_images

from sightscan.training import TrainConfig, assemble_training_set, train_detector

if TYPE_CHECKING:
    from sightscan.training.dataset import TrainingSet
    from sightscan.training.trainer import TrainedModel

SIZE = 96


@pytest.fixture(scope="session")
def synthetic_training_set() -> TrainingSet:
    training_set: TrainingSet = assemble_training_set(
        make_images(30, 24, seed=0, size=SIZE), city=None, min_images_per_label=5,
        decode_size=SIZE)
    return training_set


@pytest.fixture(scope="session")
def trained(synthetic_training_set: TrainingSet) -> TrainedModel:
    config = TrainConfig(epochs=12, image_size=SIZE, batch_size=16, lr=3e-3, threads=1,
                         frozen_blocks=3, seed=0)
    model: TrainedModel = train_detector(synthetic_training_set, config)
    return model
