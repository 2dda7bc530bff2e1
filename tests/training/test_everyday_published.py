"""A city alone in its warehouse trains with the everyday pool's photos as negatives, its gate
takes the pool's landmark photos as negatives (never trained on), and its published model
says how many of each it used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mts_synthetic import make_images, render

from sightscan.config import load_settings
from sightscan.training.export import read_metadata
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city
from sightscan.warehouse.everyday import EverydayPhoto, add_everyday_photos
from sightscan.warehouse.images import NewImage, add_images
from sightscan.warehouse.versions import latest_model_version


@pytest.mark.slow
def test_the_published_model_counts_its_everyday_negatives_and_landmarks(tmp_path: Path
                                                                          ) -> None:
    pytest.importorskip("torch")
    from sightscan.pipeline import StageRun
    from sightscan.training.service import run_train_stage

    settings = load_settings(sightscan_data_dir=tmp_path / "data", mts_epochs=1,
                             min_image_number_per_label=3)
    warehouse = Warehouse.from_settings(settings, migrate=True)
    items = [NewImage(image.load(), "Alonetown", labels=tuple(image.labels), origin="import")
             for image in make_images(6, 0, seed=2, size=64)]
    rng = np.random.default_rng(5)
    pool = [EverydayPhoto(render(None, rng, 64)[0], "Quality images of food",
                          f"https://upload.example/{n}.png", "CC0", "Jane") for n in range(8)]
    towers = [EverydayPhoto(render(None, rng, 64)[0], settings.landmark_categories[0],
                            f"https://upload.example/tower-{n}.png", "CC0", "Joe")
              for n in range(6)]
    with warehouse.transaction() as session:
        add_images(session, warehouse.blobs, items)
        add_everyday_photos(session, warehouse.blobs, pool + towers)
    counts = run_train_stage(warehouse, StageRun("Alonetown")).counts
    assert counts["published"] is True
    expected = len(items) // 4  # EVERYDAY_PER_POSITIVE of the city's labelled photos
    assert counts["everyday_negatives"] == expected > 0  # no landmark photo among them
    assert counts["landmark_photos"] == len(towers)
    with warehouse.transaction() as session:
        model = latest_model_version(session, city_id=find_city(session, "Alonetown").id)
        assert model is not None
        assert model.metadata["training"]["everyday_negatives"] == expected
        # the trainer's own counts are kept beside the job's, and the gate described is
        # the one in the served file (int8 models get their own)
        assert "train_per_class" in model.metadata["training"]
        served = read_metadata(warehouse.blobs.get(model.blob_key))
        assert model.metadata["rejection"] == served["rejection"]
        assert served["rejection"]["negative_bank_size"] > 0  # the pool photos are negatives
        gate = served["rejection"]
        assert gate["landmark_negatives"] + gate["landmarks_left_out_as_sight_like"] == len(
            towers)
        assert model.metadata["training"]["landmark_photos"] == len(towers)
    warehouse.engine.dispose()
