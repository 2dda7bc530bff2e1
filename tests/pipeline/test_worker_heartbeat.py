"""A running `sightscan worker` beats in the warehouse; `city add` and `status` rely on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sightscan.config import load_settings
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cloud import live_workers

from .conftest import Processes, child_environment, wait_for

pytestmark = pytest.mark.slow


def test_a_worker_beats_while_it_runs_and_is_forgotten_when_it_stops(
    tmp_path: Path, processes: Processes
) -> None:
    data_dir = tmp_path / "data"
    warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=data_dir), migrate=True)

    def alive() -> int:
        with warehouse.transaction() as session:
            return live_workers(session, queue="main")

    try:
        worker = processes.start("worker", "worker", "--queue", "main",
                                 env=child_environment(SIGHTSCAN_DATA_DIR=str(data_dir)))
        wait_for(lambda: alive() == 1 or not worker.alive(), timeout=60, what="a heartbeat",
                 on_timeout=processes.logs)
        assert worker.alive(), processes.logs()
        assert worker.stop() == 0, processes.logs()
        assert alive() == 0
    finally:
        warehouse.engine.dispose()
