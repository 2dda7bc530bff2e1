"""`sightscan up` stops every process it started, whatever signal stops it (real processes).

`up` runs in its own process group; its two workers and the refresher are its children in
that group, so "no child left" is "no process left in the group".
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from sightscan.config import load_settings
from sightscan.warehouse import Warehouse
from sightscan.warehouse.jobs import list_jobs
from sightscan.warehouse.models import ModelRow

from .conftest import (
    API_KEY,
    FAST_PIPELINE_ENV,
    Api,
    Process,
    Processes,
    child_environment,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.slow


def start_up(tmp_path: Path, processes: Processes, http: httpx.Client) -> Process:
    port = free_port()
    env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "data"))
    up = processes.start("up", "up", "--port", str(port), env=env)
    api = Api(f"http://127.0.0.1:{port}", http)
    wait_for(lambda: api.healthy() or not up.alive(), timeout=90, what="the API",
             on_timeout=processes.logs)
    assert up.alive(), processes.logs()
    # up + main worker + training worker + refresher
    wait_for(lambda: len(up.group_members()) >= 4, timeout=60, what="the children of up",
             on_timeout=processes.logs)
    return up


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_to_up_stops_its_workers_and_refresher(
    signum: signal.Signals, tmp_path: Path, processes: Processes, http: httpx.Client
) -> None:
    up = start_up(tmp_path, processes, http)

    up.popen.send_signal(signum)  # to `up` only, as `kill PID` or systemd's stop does

    assert up.popen.wait(timeout=60) == 0, processes.logs()
    wait_for(lambda: not up.group_members(), timeout=30, interval=0.2,
             what="every child of `sightscan up` to exit", on_timeout=processes.logs)
    assert "Traceback" not in up.log(tail=10**6), up.log()


def test_children_of_a_killed_up_stop_too(
    tmp_path: Path, processes: Processes, http: httpx.Client
) -> None:
    up = start_up(tmp_path, processes, http)

    up.kill()  # SIGKILL: no cleanup in `up` at all; the kernel signals its children

    wait_for(lambda: not up.group_members(), timeout=40, interval=0.2,
             what="the children of a killed `sightscan up` to exit", on_timeout=processes.logs)


def test_up_stopped_during_training_queues_the_train_job_again(
    tmp_path: Path, photo_folder: Path, processes: Processes, http: httpx.Client
) -> None:
    port = free_port()
    env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "data"),
                            SIGHTSCAN_API_KEY=API_KEY, **{**FAST_PIPELINE_ENV, "MTS_EPOCHS": "30"})
    up = processes.start("up", "up", "--port", str(port), env=env)
    api = Api(f"http://127.0.0.1:{port}", http)
    wait_for(lambda: api.healthy() or not up.alive(), timeout=90, what="the API",
             on_timeout=processes.logs)
    response = http.post(f"{api.url}/api/cities/Testville/add", params={"force": "true"},
                         headers={"X-API-Key": API_KEY}, json={"photo_folder": str(photo_folder)})
    assert response.status_code == 200, response.text

    def training() -> bool:
        jobs = [j for j in api.jobs("TESTVILLE") if j["stage"] == "train"]
        return bool(jobs) and jobs[0]["state"] == "running" and "epoch" in jobs[0]["counts"]

    wait_for(training, timeout=240, interval=0.2, what="the training loop",
             on_timeout=processes.logs)

    up.popen.send_signal(signal.SIGTERM)

    assert up.popen.wait(timeout=100) == 0, processes.logs()
    wait_for(lambda: not up.group_members(), timeout=30, interval=0.2,
             what="every child of `sightscan up` to exit", on_timeout=processes.logs)
    warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=tmp_path / "data"))
    try:
        with warehouse.transaction() as session:
            [train] = [j for j in list_jobs(session, city="TESTVILLE") if j.stage == "train"]
            versions = session.scalar(select(func.count()).select_from(ModelRow))
    finally:
        warehouse.dispose()
    # stopped between batches by its stop flag (not killed), and queued for the next worker
    assert (train.state, train.reason, train.attempts) == (
        "queued", "worker stopped; queued again", 1), processes.logs()
    assert versions == 0
