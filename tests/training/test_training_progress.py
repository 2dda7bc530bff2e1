"""Training shows what it does from its first second: loading, decoding, epochs, comparing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mts_synthetic import make_images

from sightscan.config import load_settings
from sightscan.training.dataset import assemble_training_set
from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import NewImage, add_images


def test_decoding_reports_every_photo_as_it_goes() -> None:
    images = make_images(3, 2, seed=1, size=48)
    seen: list[tuple[int, int]] = []
    assemble_training_set(images, city=None, min_images_per_label=2, decode_size=48,
                          on_decoded=lambda done, total: seen.append((done, total)))
    assert seen == [(n, len(images)) for n in range(1, len(images) + 1)]


@pytest.mark.slow
def test_the_train_stage_beats_its_phase_before_the_first_epoch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from sightscan.pipeline import StageRun
    from sightscan.training.service import run_train_stage

    settings = load_settings(sightscan_data_dir=tmp_path / "data", mts_epochs=1,
                             min_image_number_per_label=3)
    warehouse = Warehouse.from_settings(settings, migrate=True)
    items = [NewImage(image.load(), "Testville", labels=tuple(image.labels), origin="import")
             for image in make_images(6, 0, seed=2, size=64)]
    with warehouse.transaction() as session:
        add_images(session, warehouse.blobs, items)
    beats: list[dict[str, Any]] = []
    run = StageRun("Testville", beat=lambda c: beats.append(dict(c or {})))
    counts = run_train_stage(warehouse, run).counts
    phases = [beat["phase"] for beat in beats]
    assert phases[0] == "loading photos"
    assert phases.index("decoding photos") < phases.index("training")
    assert beats[phases.index("decoding photos")]["total"] >= len(items)  # + background crops
    assert any("epoch" in beat for beat in beats if beat["phase"] == "training")
    assert phases[-1] == "comparing with the current model"
    assert counts["published"] is True
    warehouse.engine.dispose()
