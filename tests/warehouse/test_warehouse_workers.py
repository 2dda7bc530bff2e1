"""Worker heartbeats: how commands know whether queued work will run."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from sightscan.warehouse import Warehouse
from sightscan.warehouse.models import WorkerRow, utcnow
from sightscan.warehouse.workers import live_workers, worker_beat, worker_gone


def test_a_beating_worker_counts_on_its_queue_only(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        assert live_workers(session, queue="main") == 0
        worker_beat(session, worker_id="a:1:main", queue="main")
        worker_beat(session, worker_id="a:1:main", queue="main")  # a beat again, not a second
        worker_beat(session, worker_id="b:2:training", queue="training")
    with warehouse.transaction() as session:
        assert live_workers(session, queue="main") == 1
        assert live_workers(session, queue="training") == 1


def test_a_worker_that_stopped_beating_or_left_counts_no_more(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        worker_beat(session, worker_id="a:1:main", queue="main")
        worker_beat(session, worker_id="b:2:main", queue="main")
        session.execute(update(WorkerRow).where(WorkerRow.id == "a:1:main")
                        .values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        worker_gone(session, worker_id="b:2:main")
    with warehouse.transaction() as session:
        assert live_workers(session, queue="main") == 0
