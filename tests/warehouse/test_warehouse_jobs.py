"""Pipeline jobs: stages and their order, job attempts as fencing tokens (SQLite, PostgreSQL).

The fencing tests play the paused worker of issue 10: attempt 1 is queued again after its
heartbeat went stale, attempt 2 claims the job, then attempt 1 wakes and tries to write.
"""

from __future__ import annotations

import io
import itertools
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from sightscan.errors import InvalidInputError, StaleAttemptError
from sightscan.pipeline import Stage, attempt_fence, record_job, unfinished_earlier_stage
from sightscan.tasks import stage_function
from sightscan.warehouse import Warehouse
from sightscan.warehouse import jobs as job_store
from sightscan.warehouse.models import Job, ModelRow, utcnow
from sightscan.warehouse.versions import add_model_version

_seeds = itertools.count()


def model_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (next(_seeds) % 256, 3, 5)).save(out, format="PNG")
    return out.getvalue()


def queue(warehouse: Warehouse, stage: Stage, city: str = "Testville") -> int | None:
    with warehouse.transaction() as session:
        return record_job(session, stage=stage, city=city)


def claim(warehouse: Warehouse, job_id: int) -> int:
    """Claim the job as a worker does; the attempt number it got."""
    with warehouse.transaction() as session:
        assert job_store.claim_job(session, job_id)
        return job_store.get_job(session, job_id).attempts


def go_stale_and_requeue(warehouse: Warehouse, job_id: int) -> None:
    """The worker pauses past the stale time; the refresher queues its job again."""
    with warehouse.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=600)))
        stale = job_store.requeue_stale_jobs(session, older_than=utcnow() - timedelta(seconds=60))
    assert stale == [job_id]


def publish(warehouse: Warehouse, attempt_job: int, attempt: int) -> int:
    with warehouse.transaction() as session:
        return add_model_version(session, warehouse.blobs, city="Testville",
                                 model_bytes=model_bytes(), metadata={}, metrics={},
                                 fence=attempt_fence(attempt_job, attempt)).version


def versions(warehouse: Warehouse) -> list[int]:
    with warehouse.transaction() as session:
        return list(session.scalars(select(ModelRow.version).order_by(ModelRow.version)))


# ---------------------------------------------------------------- stages
def test_the_stages_run_in_the_order_crawl_label_train() -> None:
    assert list(Stage) == [Stage.CRAWL, Stage.LABEL, Stage.TRAIN]
    assert Stage.TRAIN.earlier == (Stage.CRAWL, Stage.LABEL)
    assert Stage.CRAWL.earlier == ()


def test_an_unknown_stage_is_refused_not_treated_as_training() -> None:
    with pytest.raises(InvalidInputError, match="expected a stage in crawl, label, train"):
        Stage.parse("refresh")
    assert Stage.parse("train") is Stage.TRAIN


def test_each_stage_has_its_own_function() -> None:
    names = {stage: stage_function(stage).__name__ for stage in (Stage.CRAWL, Stage.LABEL)}
    assert names == {Stage.CRAWL: "run_crawl_stage", Stage.LABEL: "run_label_stage"}


def test_training_is_not_queued_while_the_citys_labelling_is_queued_or_running(
    warehouse: Warehouse,
) -> None:
    label = queue(warehouse, Stage.LABEL)
    assert label is not None
    assert queue(warehouse, Stage.TRAIN) is None
    claim(warehouse, label)
    assert queue(warehouse, Stage.TRAIN) is None
    assert queue(warehouse, Stage.TRAIN, city="Elsewhere") is not None  # other cities go on

    with warehouse.transaction() as session:
        assert job_store.finish_job(session, label)
    assert queue(warehouse, Stage.TRAIN) is not None


def test_labelling_waits_for_the_crawl_but_a_later_stage_does_not_block_an_earlier_one(
    warehouse: Warehouse,
) -> None:
    crawl = queue(warehouse, Stage.CRAWL)
    assert crawl is not None
    with warehouse.transaction() as session:
        city_id = session.scalars(select(Job.city_id).where(Job.id == crawl)).one()
        assert unfinished_earlier_stage(session, city_id=city_id, stage=Stage.LABEL) is Stage.CRAWL
    assert queue(warehouse, Stage.LABEL) is None
    with warehouse.transaction() as session:
        assert job_store.finish_job(session, crawl)
    assert queue(warehouse, Stage.TRAIN) is not None
    assert queue(warehouse, Stage.CRAWL) is not None  # a new crawl while training: allowed


# ---------------------------------------------------------------- fencing
def test_a_stale_attempt_cannot_publish_after_a_newer_attempt_claimed_the_job(
    warehouse: Warehouse,
) -> None:
    job_id = queue(warehouse, Stage.TRAIN)
    assert job_id is not None
    first = claim(warehouse, job_id)
    go_stale_and_requeue(warehouse, job_id)
    second = claim(warehouse, job_id)
    assert (first, second) == (1, 2)

    with pytest.raises(StaleAttemptError, match=f"job {job_id} attempt 1 is no longer current"):
        publish(warehouse, job_id, first)  # the paused worker wakes up
    assert versions(warehouse) == []

    assert publish(warehouse, job_id, second) == 1
    with pytest.raises(StaleAttemptError):
        publish(warehouse, job_id, first)
    assert versions(warehouse) == [1]


def test_a_stale_attempt_cannot_publish_even_before_the_newer_attempt_starts(
    warehouse: Warehouse,
) -> None:
    job_id = queue(warehouse, Stage.TRAIN)
    assert job_id is not None
    first = claim(warehouse, job_id)
    go_stale_and_requeue(warehouse, job_id)  # queued again, no worker took it yet

    with pytest.raises(StaleAttemptError):
        publish(warehouse, job_id, first)
    assert versions(warehouse) == []


def test_a_stale_attempt_can_neither_finish_nor_fail_nor_beat_for_the_job(
    warehouse: Warehouse,
) -> None:
    job_id = queue(warehouse, Stage.TRAIN)
    assert job_id is not None
    first = claim(warehouse, job_id)
    go_stale_and_requeue(warehouse, job_id)
    second = claim(warehouse, job_id)
    with warehouse.transaction() as session:
        before = job_store.get_job(session, job_id)
        session.execute(update(Job).where(Job.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=30)))
    with warehouse.transaction() as session:
        beat_before = session.scalar(select(Job.heartbeat_at).where(Job.id == job_id))

    with warehouse.transaction() as session:
        assert not job_store.finish_job(session, job_id, counts={"x": 1}, attempt=first)
        assert not job_store.fail_job(session, job_id, reason="late", attempt=first)
        job_store.heartbeat(session, job_id, counts={"stale": True}, attempt=first)
        assert not job_store.hold_attempt(session, job_id, attempt=first)

    with warehouse.transaction() as session:
        after = job_store.get_job(session, job_id)
        beat_at = session.scalar(select(Job.heartbeat_at).where(Job.id == job_id))
    assert (after.state, after.attempts, after.counts, after.reason) == (
        "running", second, before.counts, before.reason)
    assert beat_at == beat_before  # a stale attempt's heartbeat keeps nobody's job alive
    with warehouse.transaction() as session:
        assert job_store.finish_job(session, job_id, counts={"ok": 1}, attempt=second)


def test_a_failing_fence_writes_no_model_blob(warehouse: Warehouse) -> None:
    job_id = queue(warehouse, Stage.TRAIN)
    assert job_id is not None
    first = claim(warehouse, job_id)
    go_stale_and_requeue(warehouse, job_id)
    blobs = Path(warehouse.blobs.root)
    before = sorted(blobs.rglob("*"))

    with pytest.raises(StaleAttemptError):
        publish(warehouse, job_id, first)

    assert sorted(blobs.rglob("*")) == before


def test_the_current_attempt_holds_its_job_and_so_is_not_requeued_meanwhile(
    warehouse: Warehouse,
) -> None:
    job_id = queue(warehouse, Stage.TRAIN)
    assert job_id is not None
    attempt = claim(warehouse, job_id)
    with warehouse.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=600)))
        attempt_fence(job_id, attempt)(session)  # publishing: refreshes the heartbeat
        assert job_store.requeue_stale_jobs(
            session, older_than=utcnow() - timedelta(seconds=60)) == []
    with warehouse.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Job)
                              .where(Job.state == "running")) == 1


def test_a_requeue_waits_for_a_publishing_attempt_and_then_leaves_its_job_alone(
    warehouse: Warehouse, backend: str,
) -> None:
    if backend != "postgresql":
        pytest.skip("row locks: SQLite serialises whole transactions instead")
    job_id = queue(warehouse, Stage.TRAIN)
    assert job_id is not None
    attempt = claim(warehouse, job_id)
    with warehouse.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=600)))
    requeued: list[list[int]] = []
    publishing = threading.Event()

    def refresher() -> None:
        publishing.wait(10)
        with warehouse.transaction() as session:
            requeued.append(job_store.requeue_stale_jobs(
                session, older_than=utcnow() - timedelta(seconds=60)))

    thread = threading.Thread(target=refresher)
    thread.start()
    with warehouse.transaction() as session:
        attempt_fence(job_id, attempt)(session)  # holds the job row until commit
        publishing.set()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the requeue should wait for the publishing transaction"
        add_model_version(session, warehouse.blobs, city="Testville", model_bytes=model_bytes(),
                          metadata={}, metrics={})
    thread.join(timeout=10)

    assert requeued == [[]]
    assert versions(warehouse) == [1]
    with warehouse.transaction() as session:
        assert job_store.finish_job(session, job_id, attempt=attempt)
