"""The paid Vision cap holds under two label stages running in parallel on the same city.

Two threads, each with its own Warehouse (own engine and connections, as two workers
would have), run the real label stage against a fake Google Vision REST server that
counts requests. The cap is reserved in the warehouse, so together they make exactly
MAX_GOOGLE_VISION_CALLS_PER_NEW_CITY requests; every other photo gets its weak label.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fakes.server import FakeServer, Reply, fake_server  # noqa: F401  (fixture)
from fakes.vision import ANNOTATE_PATH, landmark, vision_handler
from sightscan.config import Settings, load_settings
from sightscan.labelling.service import run_label_stage
from sightscan.pipeline import StageRun
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city, vision_calls_made
from sightscan.warehouse.images import NewImage, add_image, labels_of
from sightscan.warehouse.jobs import labelling_log
from sightscan.warehouse.models import FactSight

from .photos import SIGHTS, render

pytestmark = pytest.mark.slow

CAP = 5
PHOTOS = 20


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path,
             fake_server: FakeServer) -> Settings:  # noqa: F811
    """Vision labelling against the fake server, capped at CAP calls, on either backend."""
    database: dict[str, Any] = {}
    if request.param == "postgresql":
        database = {k.lower(): v for k, v in
                    request.getfixturevalue("postgres_database").items()}
    return load_settings(sightscan_data_dir=tmp_path / "data", sightscan_labeller="vision",
                         sightscan_vision_endpoint=fake_server.url,
                         max_google_vision_calls_per_new_city=CAP, **database)


def test_two_parallel_label_stages_make_exactly_the_capped_number_of_vision_calls(
    settings: Settings, fake_server: FakeServer,  # noqa: F811
) -> None:
    gate = landmark("Brandenburger Tor", 0.9, [(10, 10), (90, 10), (90, 90), (10, 90)])
    handler = vision_handler([gate])

    def slow_vision(request: Any) -> Reply:
        reply = handler(request)
        reply.delay = 0.05  # long enough for the two stages to interleave
        return reply

    fake_server.route("POST", ANNOTATE_PATH, slow_vision)
    first = Warehouse.from_settings(settings, migrate=True)
    second = Warehouse.from_settings(settings)
    try:
        rng = random.Random(1)
        with first.transaction() as session:
            for n in range(PHOTOS):
                sight = SIGHTS[n % len(SIGHTS)]
                add_image(session, first.blobs, NewImage(
                    data=render(sight, rng, 96), city="Testville", sight=sight,
                    origin="crawler"))

        errors: list[BaseException] = []
        barrier = threading.Barrier(2, timeout=30)

        def stage(warehouse: Warehouse) -> None:
            try:
                barrier.wait()
                run_label_stage(warehouse, StageRun("TESTVILLE", {"mode": "new"}))
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=stage, args=(w,)) for w in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a label stage hung"
        assert errors == []

        assert len(fake_server.requests_to(ANNOTATE_PATH)) == CAP
        with first.transaction() as session:
            city_id = find_city(session, "TESTVILLE").id
            assert vision_calls_made(session, city_id) == CAP
            image_ids = list(session.scalars(
                select(FactSight.image_id).where(FactSight.city_id == city_id)))
            labels = {image_id: labels_of(session, image_id) for image_id in image_ids}
            log = labelling_log(session, city="TESTVILLE", limit=1000)
    finally:
        first.dispose()
        second.dispose()

    assert len(labels) == PHOTOS
    assert all(labels.values()), "every photo has a label"
    outcomes = Counter(line["outcome"] for line in log)
    assert outcomes["vision"] == CAP
    assert outcomes["capped+weak"] >= PHOTOS - CAP
    assert set(outcomes) <= {"vision", "capped+weak"}
    assert {line["image_id"] for line in log} == set(labels)
