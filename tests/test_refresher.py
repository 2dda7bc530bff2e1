"""The data mart refresher (DMR): which city to label, which to train, and when, on SQLite."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update

from sightscan.config import load_settings
from sightscan.detections import Label
from sightscan.labelling.remote import RemoteLabelling
from sightscan.pipeline import Stage, city_to_label, needs_training, ready_to_train, record_job
from sightscan.refresher import PassStep, Refresher, StepResult, describe_pass
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.jobs import claim_job, finish_job
from sightscan.warehouse.marts import CityOverview, city_overview, refresh_marts
from sightscan.warehouse.models import City, utcnow
from sightscan.warehouse.versions import add_model_version

_seeds = itertools.count()


@pytest.fixture
def make_warehouse(tmp_path: Path) -> Iterator[Callable[..., Warehouse]]:
    opened: list[Warehouse] = []

    def make(**overrides: Any) -> Warehouse:
        values: dict[str, Any] = {"sightscan_data_dir": tmp_path / "data",
                                  "min_labelled_images_needed_for_training": 4,
                                  "sightscan_new_labels_for_retraining": 3}
        values.update(overrides)
        warehouse = Warehouse.from_settings(load_settings(**values), migrate=True)
        opened.append(warehouse)
        return warehouse

    yield make
    for warehouse in opened:
        warehouse.dispose()


@pytest.fixture
def warehouse(make_warehouse: Callable[..., Warehouse]) -> Warehouse:
    return make_warehouse()


def photo() -> bytes:
    """A small JPEG with content (and so hash) of its own."""
    seed = next(_seeds)
    image = Image.new("RGB", (24, 16), (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))
    image.putpixel((0, 0), (seed % 256, seed // 256 % 256, 7))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def add_photos(warehouse: Warehouse, city: str, *, labelled: int = 0,
               unlabelled: int = 0) -> None:
    """Add photos of a city, the first `labelled` of them with a label, and refresh the marts."""
    with warehouse.transaction() as session:
        for n in range(labelled + unlabelled):
            labels = (Label("Dom"),) if n < labelled else ()
            add_image(session, warehouse.blobs, NewImage(
                data=photo(), city=city, sight="Dom", labels=labels))
        refresh_marts(session)


def create_city(warehouse: Warehouse, city: str, *, days_ago: int) -> None:
    with warehouse.transaction() as session:
        row = get_or_create_city(session, city)
        session.execute(update(City).where(City.id == row.id)
                        .values(created_at=utcnow() - timedelta(days=days_ago)))


def publish(warehouse: Warehouse, city: str, *, labelled_images: int) -> None:
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city=city, model_bytes=photo(),
                          metadata={}, metrics={}, labelled_images=labelled_images)
        refresh_marts(session)


def overview(warehouse: Warehouse) -> list[CityOverview]:
    with warehouse.transaction() as session:
        return city_overview(session)


def ready(warehouse: Warehouse, city: str) -> bool:
    with warehouse.transaction() as session:
        [row] = [c for c in city_overview(session) if c.city == city]
        return needs_training(session, row, warehouse.settings)


# ---------------------------------------------------------------- city_to_label
def test_nothing_to_label_without_unlabelled_photos(warehouse: Warehouse) -> None:
    assert city_to_label(overview(warehouse)) is None
    add_photos(warehouse, "Done", labelled=3)
    assert city_to_label(overview(warehouse)) is None


def test_a_city_without_any_label_comes_first(warehouse: Warehouse) -> None:
    add_photos(warehouse, "Busy", labelled=1, unlabelled=9)
    add_photos(warehouse, "New", unlabelled=2)

    assert city_to_label(overview(warehouse)) == "NEW"


def test_among_cities_without_labels_the_oldest_comes_first(warehouse: Warehouse) -> None:
    create_city(warehouse, "Young", days_ago=1)
    create_city(warehouse, "Old", days_ago=5)
    create_city(warehouse, "Middle", days_ago=3)
    for city in ("Young", "Old", "Middle"):
        add_photos(warehouse, city, unlabelled=2 if city != "Young" else 8)

    assert city_to_label(overview(warehouse)) == "OLD"


def test_a_city_without_labels_but_also_without_photos_is_skipped(warehouse: Warehouse) -> None:
    create_city(warehouse, "Empty", days_ago=9)
    add_photos(warehouse, "Some", labelled=1, unlabelled=1)

    assert city_to_label(overview(warehouse)) == "SOME"


def test_otherwise_the_city_with_most_unlabelled_photos_comes_first(
    warehouse: Warehouse,
) -> None:
    add_photos(warehouse, "Few", labelled=5, unlabelled=2)
    add_photos(warehouse, "Many", labelled=1, unlabelled=4)
    add_photos(warehouse, "None Left", labelled=9)

    assert city_to_label(overview(warehouse)) == "MANY"


# ---------------------------------------------------------------- needs_training
def test_a_city_without_a_model_needs_more_than_the_minimum_of_labelled_photos(
    warehouse: Warehouse,
) -> None:
    add_photos(warehouse, "Testville", labelled=4, unlabelled=5)  # minimum is 4
    assert not ready(warehouse, "TESTVILLE")

    add_photos(warehouse, "Testville", labelled=1)
    assert ready(warehouse, "TESTVILLE")


def test_a_city_with_a_model_needs_enough_new_labelled_photos_since_the_newest_model(
    warehouse: Warehouse,
) -> None:
    add_photos(warehouse, "Testville", labelled=6)
    publish(warehouse, "Testville", labelled_images=6)
    assert not ready(warehouse, "TESTVILLE")

    add_photos(warehouse, "Testville", labelled=2, unlabelled=4)  # 2 new, 3 needed
    assert not ready(warehouse, "TESTVILLE")

    add_photos(warehouse, "Testville", labelled=1)
    assert ready(warehouse, "TESTVILLE")

    publish(warehouse, "Testville", labelled_images=9)
    assert not ready(warehouse, "TESTVILLE")


def test_ready_to_train_lists_every_ready_city(warehouse: Warehouse) -> None:
    add_photos(warehouse, "Ready", labelled=5)
    add_photos(warehouse, "Small", labelled=2)
    add_photos(warehouse, "Trained", labelled=7)
    publish(warehouse, "Trained", labelled_images=7)
    add_photos(warehouse, "Retrain", labelled=8)
    publish(warehouse, "Retrain", labelled_images=5)

    with warehouse.transaction() as session:
        assert sorted(ready_to_train(session, warehouse.settings)) == ["READY", "RETRAIN"]


def test_a_city_whose_labelling_is_queued_or_running_is_not_ready_to_train(
    warehouse: Warehouse,
) -> None:
    add_photos(warehouse, "Ready", labelled=5, unlabelled=1)
    with warehouse.transaction() as session:
        label_job = record_job(session, stage=Stage.LABEL, city="Ready")
        assert label_job is not None
        assert ready_to_train(session, warehouse.settings) == []  # queued
        assert claim_job(session, label_job)
        assert ready_to_train(session, warehouse.settings) == []  # running
        assert finish_job(session, label_job)
        assert ready_to_train(session, warehouse.settings) == ["READY"]


# ---------------------------------------------------------------- run_once
@dataclass
class RecordingScheduler:
    """A real Scheduler without a queue: job rows (one active per city and stage), calls kept."""

    warehouse: Warehouse
    submitted: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    requeue_calls: list[int] = field(default_factory=list)

    def submit(self, stage: Stage, city: str, **options: Any) -> int | None:
        self.submitted.append((stage, city, options))
        with self.warehouse.transaction() as session:
            return record_job(session, stage=stage, city=city, options=options)

    def requeue_lost_jobs(self, *, stale_after_seconds: int) -> list[int]:
        self.requeue_calls.append(stale_after_seconds)
        return []


@pytest.fixture
def intervals(make_warehouse: Callable[..., Warehouse]) -> Warehouse:
    """A warehouse whose settings refresh every 60 s, label every 120 s, train every 300 s."""
    return make_warehouse(data_mart_refresh_data_marts_every_seconds=60,
                          data_mart_enable_labelling_requests_every_seconds=120,
                          data_mart_enable_model_training_every_seconds=300,
                          sightscan_job_stale_seconds=45)


def test_the_first_pass_runs_every_duty_training_first(intervals: Warehouse) -> None:
    add_photos(intervals, "Testville", labelled=5, unlabelled=2)
    scheduler = RecordingScheduler(intervals)
    refresher = Refresher(intervals.settings, intervals, scheduler)

    done = refresher.run_once(now=1000.0)

    assert list(done) == ["refreshed_changes", "requeued_jobs", "train", "label"]
    assert done["requeued_jobs"] == []
    assert scheduler.requeue_calls == [45]
    train, label = done["train"], done["label"]
    assert isinstance(train, list) and isinstance(label, tuple)
    [(train_city, train_job)] = train
    assert train_city == "TESTVILLE" and train_job is not None
    label_city, label_job = label
    assert label_city == "TESTVILLE" and label_job is not None
    assert scheduler.submitted == [("train", "TESTVILLE", {}),
                                   ("label", "TESTVILLE", {"mode": "new"})]


def test_training_waits_until_the_labelling_of_the_city_has_finished(
    intervals: Warehouse,
) -> None:
    add_photos(intervals, "Testville", labelled=5, unlabelled=2)
    scheduler = RecordingScheduler(intervals)
    refresher = Refresher(intervals.settings, intervals, scheduler)
    label_job = scheduler.submit(Stage.LABEL, "Testville", mode="new")
    assert label_job is not None
    assert "train" not in refresher.run_once(now=1000.0)  # labelling queued
    with intervals.transaction() as session:
        assert claim_job(session, label_job)
    assert "train" not in refresher.run_once(now=1300.0)  # labelling running

    with intervals.transaction() as session:
        assert finish_job(session, label_job)
    train = refresher.run_once(now=1600.0)["train"]

    assert isinstance(train, list)
    [(train_city, train_job)] = train
    assert train_city == "TESTVILLE" and train_job is not None
    assert [stage for stage, _, _ in scheduler.submitted].count(Stage.TRAIN) == 1


def test_each_step_waits_for_its_own_interval(intervals: Warehouse) -> None:
    calls: list[str] = []

    def step(name: str) -> PassStep:
        def run(_: Refresher) -> StepResult:
            calls.append(name)
            return {name: True}

        return PassStep(name, lambda s: {"a": 60, "b": 120}[name], run)

    refresher = Refresher(intervals.settings, intervals, RecordingScheduler(intervals),
                          steps=[step("a"), step("b")])

    assert refresher.run_once(now=1000.0) == {"a": True, "b": True}
    assert refresher.run_once(now=1059.0) == {}
    assert refresher.run_once(now=1060.0) == {"a": True}
    assert refresher.run_once(now=1120.0) == {"a": True, "b": True}
    assert refresher.run_once(now=1121.0) == {}
    assert calls == ["a", "b", "a", "a", "b"]


def test_the_default_steps_follow_their_settings(intervals: Warehouse) -> None:
    refresher = Refresher(intervals.settings, intervals, RecordingScheduler(intervals))

    assert [(step.name, step.every(intervals.settings)) for step in refresher.steps] == [
        ("refresh", 60), ("train", 300), ("label", 120), ("gpu", 30)]


def test_a_step_added_by_a_deployment_runs_after_the_others(intervals: Warehouse) -> None:
    refresher = Refresher(intervals.settings, intervals, RecordingScheduler(intervals))
    refresher.add_step(PassStep("backup", lambda s: 30, lambda r: {"backup": "started"}))

    done = refresher.run_once(now=0.0)

    assert list(done)[-1] == "backup"


def test_a_pass_does_not_queue_a_second_job_for_a_city_and_stage(intervals: Warehouse) -> None:
    add_photos(intervals, "Testville", labelled=5, unlabelled=2)
    scheduler = RecordingScheduler(intervals)
    refresher = Refresher(intervals.settings, intervals, scheduler)
    first = refresher.run_once(now=0.0)

    second = refresher.run_once(now=10_000.0)

    assert first["label"][1] is not None  # type: ignore[index]
    assert first["train"][0][1] is not None  # type: ignore[index]
    assert "label" not in second and "train" not in second
    assert len(scheduler.submitted) == 2


def test_the_refresh_duty_brings_the_marts_up_to_date(intervals: Warehouse) -> None:
    refresher = Refresher(intervals.settings, intervals, RecordingScheduler(intervals))
    with intervals.transaction() as session:  # arrives without a refresh
        add_image(session, intervals.blobs, NewImage(data=photo(), city="Testville"))

    done = refresher.run_once(now=0.0)

    assert done["refreshed_changes"] == 1
    assert [(c.city, c.images) for c in overview(intervals)] == [("TESTVILLE", 1)]
    assert done["label"][0] == "TESTVILLE"  # type: ignore[index]


def test_the_remote_labelling_client_is_opened_once_and_closed_with_the_refresher(
    make_warehouse: Callable[..., Warehouse],
) -> None:
    warehouse = make_warehouse(ils_public_endpoint_url="http://127.0.0.1:9",
                               sightscan_api_key="operator-key-0123456789abcdef")
    refresher = Refresher(warehouse.settings, warehouse, RecordingScheduler(warehouse))
    remote = refresher.labelling
    assert isinstance(remote, RemoteLabelling)
    assert refresher.labelling is remote  # one client for every pass, not one per pass
    stop = threading.Event()
    stop.set()

    refresher.run_forever(stop)

    assert remote._client.is_closed


# ---------------------------------------------------------------- the periodic log line
def test_a_training_already_running_is_said_in_words() -> None:
    line = describe_pass({"train": [("BERLIN", None)]})
    assert line == (
        "training of BERLIN is already queued or running (enough labelled photos)"
    )
    assert "{" not in line and "None" not in line


def test_every_duty_of_a_pass_is_described() -> None:
    line = describe_pass({"refreshed_changes": 12, "requeued_jobs": [4, 7],
                          "label": ("KÖLN", 9), "train": [("ROME", 10)]})
    assert line.split("; ") == [
        "data marts refreshed with 12 new arrival(s)",
        "job(s) 4, 7 queued again (worker stopped or message lost)",
        "labelling of KÖLN queued as job 9",
        "training of ROME queued as job 10 (enough labelled photos)",
    ]


def test_an_idle_pass_says_so() -> None:
    assert describe_pass({"refreshed_changes": 0, "requeued_jobs": []}) == "nothing to do"
