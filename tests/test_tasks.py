"""HueyScheduler and run_job on SqliteHuey in a temporary data dir, with a real SQLite warehouse.

Messages are taken and executed by hand (`huey.dequeue()` + `huey.execute()`), exactly as
a consumer does, so retries go through Huey's own schedule.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from huey.api import Task
from sqlalchemy import update

from fakes.overpass import INTERPRETER_PATH
from fakes.server import FakeServer, Reply, fake_server  # noqa: F401  (fixture)
from pipeline.photos import write_photo_folder
from sightscan.config import load_settings
from sightscan.errors import InvalidInputError
from sightscan.pipeline import Stage
from sightscan.tasks import HueyScheduler
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city, request_city
from sightscan.warehouse.jobs import JobView, claim_job, create_job, get_job, list_jobs
from sightscan.warehouse.models import Job, utcnow


@pytest.fixture
def make_scheduler(tmp_path: Path) -> Iterator[Callable[..., HueyScheduler]]:
    """HueyScheduler on SqliteHuey files and a SQLite warehouse in tmp_path (overridable)."""
    opened: list[Warehouse] = []

    def make(**overrides: Any) -> HueyScheduler:
        settings = load_settings(sightscan_data_dir=tmp_path / "data", **overrides)
        warehouse = Warehouse.from_settings(settings, migrate=True)
        opened.append(warehouse)
        return HueyScheduler.from_settings(settings, warehouse)

    yield make
    for warehouse in opened:
        warehouse.dispose()


@pytest.fixture
def scheduler(make_scheduler: Callable[..., HueyScheduler]) -> HueyScheduler:
    return make_scheduler()


def job(scheduler: HueyScheduler, job_id: int) -> JobView:
    with scheduler.queues.warehouse.transaction() as session:
        return get_job(session, job_id)


def jobs(scheduler: HueyScheduler) -> list[JobView]:
    with scheduler.queues.warehouse.transaction() as session:
        return list_jobs(session)


def messages(scheduler: HueyScheduler) -> list[tuple[str, int]]:
    """(task name, job id) of every message waiting in either queue or in a retry schedule."""
    found = []
    for huey in (scheduler.queues.main, scheduler.queues.training):
        for task in list(huey.pending()) + list(huey.scheduled()):
            found.append((task.name, int(task.args[0])))
    return sorted(found)


def request(scheduler: HueyScheduler, city: str, **source: Any) -> None:
    with scheduler.queues.warehouse.transaction() as session:
        request_city(session, city=city, threshold=1, force=True, **source)


def age_job(scheduler: HueyScheduler, job_id: int, seconds: int, **columns: bool) -> None:
    """Move a job's timestamps (created_at, heartbeat_at) `seconds` into the past."""
    past = utcnow() - timedelta(seconds=seconds)
    values = {name: past for name, wanted in columns.items() if wanted}
    with scheduler.queues.warehouse.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def take(scheduler: HueyScheduler, queue: str = "main") -> Task:
    huey = scheduler.queues.training if queue == "training" else scheduler.queues.main
    task = huey.dequeue()
    assert task is not None, "expected a message"
    return task


def execute(scheduler: HueyScheduler, task: Task) -> None:
    """Run a message as a consumer would (eta reached), retries handled by Huey."""
    huey = scheduler.queues.training if "train" in task.name else scheduler.queues.main
    huey.execute(task, timestamp=task.eta or None)


def run_retries(scheduler: HueyScheduler, limit: int = 10) -> int:
    """Execute scheduled retries until none is left; how many ran."""
    ran = 0
    huey = scheduler.queues.main
    while ran < limit and (due := huey.read_schedule(utcnow() + timedelta(days=1))):
        for task in due:
            execute(scheduler, task)
            ran += 1
    return ran


# ---------------------------------------------------------------- submit
def test_submit_records_a_queued_job_and_one_message(scheduler: HueyScheduler) -> None:
    job_id = scheduler.submit(Stage.CRAWL, "Testville")

    assert job_id is not None
    queued = job(scheduler, job_id)
    assert (queued.city, queued.stage, queued.state, queued.attempts) == (
        "TESTVILLE", "crawl", "queued", 0)
    assert messages(scheduler) == [("sightscan.crawl", job_id)]


def test_a_second_submit_for_the_same_city_and_stage_returns_none(
    scheduler: HueyScheduler,
) -> None:
    job_id = scheduler.submit(Stage.CRAWL, "Testville")

    assert scheduler.submit(Stage.CRAWL, "testville") is None
    assert [j.id for j in jobs(scheduler)] == [job_id]
    assert messages(scheduler) == [("sightscan.crawl", job_id)]


def test_training_goes_to_the_training_queue(scheduler: HueyScheduler) -> None:
    job_id = scheduler.submit(Stage.TRAIN, "Testville")

    assert len(scheduler.queues.main.pending()) == 0
    assert [t.args[0] for t in scheduler.queues.training.pending()] == [job_id]


# ---------------------------------------------------------------- run_job
def test_a_job_runs_once_even_when_its_message_is_delivered_twice(
    scheduler: HueyScheduler, tmp_path: Path,
) -> None:
    folder = write_photo_folder(tmp_path / "photos", per_sight=2, size=64)
    request(scheduler, "Testville", photo_folder=str(folder))
    job_id = scheduler.submit(Stage.CRAWL, "Testville")
    assert job_id is not None
    message = take(scheduler)

    execute(scheduler, message)
    done = job(scheduler, job_id)
    assert (done.state, done.attempts, done.counts["stored"]) == ("done", 1, 6)
    follow_up = [j for j in jobs(scheduler) if j.stage == "label"]
    assert [j.state for j in follow_up] == ["queued"]
    assert messages(scheduler) == [("sightscan.label", follow_up[0].id)]

    execute(scheduler, message)  # the same message again: the claim fails, nothing runs

    again = job(scheduler, job_id)
    assert (again.state, again.attempts, again.finished_at) == ("done", 1, done.finished_at)
    assert messages(scheduler) == [("sightscan.label", follow_up[0].id)]
    assert len(jobs(scheduler)) == 2


def test_a_transient_failure_queues_the_job_again_then_fails_it_after_the_last_retry(
    make_scheduler: Callable[..., HueyScheduler], fake_server: FakeServer,  # noqa: F811
) -> None:
    fake_server.route("POST", INTERPRETER_PATH,
                      Reply(200, {"remark": "runtime error: Query timed out"}))
    scheduler = make_scheduler(sightscan_discovery="osm", sightscan_photo_source="commons",
                               sightscan_overpass_url=fake_server.url + INTERPRETER_PATH,
                               sightscan_commons_url=fake_server.url + "/w/api.php")
    job_id = scheduler.submit(Stage.CRAWL, "Testville")
    assert job_id is not None

    execute(scheduler, take(scheduler))

    retrying = job(scheduler, job_id)
    assert (retrying.state, retrying.attempts) == ("queued", 1)
    assert retrying.reason is not None
    assert retrying.reason.startswith("ExternalServiceError: Overpass returned no elements list")
    assert messages(scheduler) == [("sightscan.crawl", job_id)]  # in Huey's retry schedule
    [scheduled] = scheduler.queues.main.scheduled()
    assert scheduled.retries == 2

    assert run_retries(scheduler) == 3

    failed = job(scheduler, job_id)
    assert (failed.state, failed.attempts) == ("failed", 4)
    assert failed.reason == retrying.reason
    assert failed.finished_at is not None
    assert messages(scheduler) == []
    assert [j.stage for j in jobs(scheduler)] == ["crawl"]


def test_a_sightscan_error_fails_the_job_at_once_and_queues_nothing_after_it(
    make_scheduler: Callable[..., HueyScheduler], fake_server: FakeServer,  # noqa: F811
) -> None:
    scheduler = make_scheduler(sightscan_photo_source="commons",
                               sightscan_commons_url=fake_server.url + "/w/api.php")
    request(scheduler, "Testville", sights=[])  # static discovery with no sights
    job_id = scheduler.submit(Stage.CRAWL, "Testville")
    assert job_id is not None

    execute(scheduler, take(scheduler))

    failed = job(scheduler, job_id)
    assert (failed.state, failed.attempts) == ("failed", 1)
    assert failed.reason is not None and failed.reason.startswith("no sights known for TESTVILLE")
    assert messages(scheduler) == []
    assert [j.stage for j in jobs(scheduler)] == ["crawl"]
    assert fake_server.requests == []


# ---------------------------------------------------------------- lost jobs
def test_a_running_job_with_an_old_heartbeat_is_queued_again(scheduler: HueyScheduler) -> None:
    job_id = scheduler.submit(Stage.CRAWL, "Testville")
    assert job_id is not None
    take(scheduler)  # a worker took the message ...
    with scheduler.queues.warehouse.transaction() as session:
        assert claim_job(session, job_id)  # ... started the job, and died
    age_job(scheduler, job_id, 60, created_at=True, heartbeat_at=True)

    assert scheduler.requeue_lost_jobs(stale_after_seconds=10) == [job_id]

    requeued = job(scheduler, job_id)
    assert (requeued.state, requeued.attempts) == ("queued", 1)
    assert requeued.reason == "worker stopped; queued again"
    assert messages(scheduler) == [("sightscan.crawl", job_id)]


def test_a_queued_job_whose_message_is_gone_is_queued_again(scheduler: HueyScheduler) -> None:
    job_id = scheduler.submit(Stage.TRAIN, "Testville")
    assert job_id is not None
    take(scheduler, "training")  # the message is lost (a worker took it and was killed)
    age_job(scheduler, job_id, 60, created_at=True)

    assert scheduler.requeue_lost_jobs(stale_after_seconds=10) == [job_id]

    assert job(scheduler, job_id).state == "queued"
    assert messages(scheduler) == [("sightscan.train", job_id)]


def test_live_and_waiting_jobs_are_left_alone(scheduler: HueyScheduler) -> None:
    waiting = scheduler.submit(Stage.CRAWL, "Waitville")  # message still in the queue
    running = scheduler.submit(Stage.TRAIN, "Runville")
    assert waiting is not None and running is not None
    take(scheduler, "training")
    with scheduler.queues.warehouse.transaction() as session:
        assert claim_job(session, running)  # beating: heartbeat is fresh
    age_job(scheduler, waiting, 60, created_at=True)
    age_job(scheduler, running, 60, created_at=True)

    assert scheduler.requeue_lost_jobs(stale_after_seconds=10) == []

    assert messages(scheduler) == [("sightscan.crawl", waiting)]
    assert job(scheduler, running).state == "running"


def test_the_main_queue_stages_never_import_torch() -> None:
    code = ("import sys\n"
            "from sightscan.pipeline import Stage\n"
            "from sightscan.tasks import stage_function\n"
            "stage_function(Stage.CRAWL); stage_function(Stage.LABEL)\n"
            "import sightscan.processes, sightscan.api\n"
            "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- stopping workers
def test_a_stage_told_to_stop_queues_its_job_again_for_the_next_worker(
    scheduler: HueyScheduler, tmp_path: Path,
) -> None:
    folder = write_photo_folder(tmp_path / "photos", per_sight=2, size=64)
    request(scheduler, "Testville", photo_folder=str(folder))
    job_id = scheduler.submit(Stage.CRAWL, "Testville")
    assert job_id is not None
    message = take(scheduler)
    scheduler.queues.stop.set()  # the worker got SIGTERM

    execute(scheduler, message)

    stopped = job(scheduler, job_id)
    assert (stopped.state, stopped.attempts, stopped.reason) == (
        "queued", 1, "worker stopped; queued again")
    assert messages(scheduler) == [("sightscan.crawl", job_id)]  # not in a retry schedule
    assert [j.stage for j in jobs(scheduler)] == ["crawl"]

    scheduler.queues.stop.clear()  # the next worker
    execute(scheduler, take(scheduler))
    done = job(scheduler, job_id)
    assert (done.state, done.attempts, done.counts["stored"]) == ("done", 2, 6)


def test_a_finished_label_stage_queues_training_when_the_city_is_ready(
    make_scheduler: Callable[..., HueyScheduler], tmp_path: Path,
) -> None:
    scheduler = make_scheduler(min_labelled_images_needed_for_training=4)
    folder = write_photo_folder(tmp_path / "photos", per_sight=2, size=64)
    request(scheduler, "Testville", photo_folder=str(folder))
    assert scheduler.submit(Stage.CRAWL, "Testville") is not None
    execute(scheduler, take(scheduler))  # crawl -> label queued

    execute(scheduler, take(scheduler))  # label -> train queued

    assert [(j.stage, j.state) for j in jobs(scheduler)] == [
        ("train", "queued"), ("label", "done"), ("crawl", "done")]
    assert [name for name, _ in messages(scheduler)] == ["sightscan.train"]
    assert "next_stage" not in job(scheduler, jobs(scheduler)[1].id).counts


def test_a_job_row_with_an_unknown_stage_is_never_run_as_training(
    scheduler: HueyScheduler,
) -> None:
    with scheduler.queues.warehouse.transaction() as session:
        city_id = get_or_create_city(session, "Testville").id
        odd = create_job(session, city_id=city_id, stage="refresh")
    assert odd is not None
    age_job(scheduler, odd, 60, created_at=True)

    assert scheduler.requeue_lost_jobs(stale_after_seconds=10) == []

    assert messages(scheduler) == []
    with pytest.raises(InvalidInputError):
        scheduler.submit("refresh", "Testville")  # type: ignore[arg-type]
