"""The same city across separate processes on PostgreSQL + Redis, with a worker killed mid-train.

`sightscan api`, two main-queue workers, one training worker and the refresher run as
separate processes sharing a temporary PostgreSQL database, a claimed Redis database and a
blob folder. The training worker is killed with SIGKILL while its job runs; the refresher
notices the stale heartbeat and queues the job again for a new training worker, which
publishes exactly one version 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from sightscan.config import load_settings
from sightscan.warehouse import Warehouse
from sightscan.warehouse.models import City, ModelRow

from .conftest import (
    API_KEY,
    FAST_PIPELINE_ENV,
    Api,
    Processes,
    child_environment,
    free_port,
    run_cli,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_a_train_job_survives_a_killed_training_worker(
    postgres_database: dict[str, str], redis_url: str,  # set up first: torn down last
    tmp_path: Path, photo_folder: Path, processes: Processes, http: httpx.Client,
) -> None:
    port = free_port()
    env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "data"),
                            SIGHTSCAN_BLOB_URL=str(tmp_path / "blobs"),
                            SIGHTSCAN_API_KEY=API_KEY, REDIS_URL=redis_url,
                            **postgres_database, **FAST_PIPELINE_ENV)
    migrated = run_cli("db", "upgrade", env=env)  # the deployment's pre-start step
    assert migrated.returncode == 0, migrated.stderr

    processes.start("api", "api", "--port", str(port), env=env)
    processes.start("worker-1", "worker", env=env)
    processes.start("worker-2", "worker", env=env)
    trainer = processes.start("trainer-1", "worker", "--queue", "training", env=env)
    processes.start("refresher", "refresher", env=env)
    api = Api(f"http://127.0.0.1:{port}", http)
    wait_for(api.healthy, timeout=60, what="the API", on_timeout=processes.logs)

    response = http.post(f"{api.url}/api/cities/Testville/add", params={"force": "true"},
                         headers={"X-API-Key": API_KEY},
                         json={"photo_folder": str(photo_folder)})
    assert response.status_code == 200, response.text

    def train_job() -> dict[str, Any] | None:
        jobs = [job for job in api.jobs("TESTVILLE") if job["stage"] == "train"]
        failed = [job for job in api.jobs("TESTVILLE") if job["state"] == "failed"]
        assert not failed, f"{failed}\n{processes.logs()}"
        return jobs[0] if jobs else None

    def training_in_progress() -> dict[str, Any] | None:
        # The stage reports its epoch in the job's counts once the training loop runs.
        job = train_job()
        if job is not None and job["state"] == "running" and "epoch" in job["counts"]:
            return job
        return None

    running = wait_for(training_in_progress, timeout=120, interval=0.2,
                       what="a train job in its training loop", on_timeout=processes.logs)
    assert running["attempts"] == 1
    trainer.kill()  # SIGKILL: no graceful shutdown, no job update
    assert api.model_version("TESTVILLE") == -1
    processes.start("trainer-2", "worker", "--queue", "training", env=env)

    done = wait_for(lambda: (job := train_job()) is not None and job["state"] == "done" and job,
                    timeout=150, interval=1, what="the train job to finish after the kill",
                    on_timeout=processes.logs)
    assert done["id"] == running["id"]
    assert done["attempts"] == 2
    assert done["counts"]["published"] is True
    assert api.model_version("TESTVILLE") == 1
    assert [job["stage"] for job in api.jobs("TESTVILLE")].count("train") == 1

    settings = load_settings(**{k.lower(): v for k, v in postgres_database.items()},
                             sightscan_data_dir=tmp_path / "data",
                             sightscan_blob_url=str(tmp_path / "blobs"))
    warehouse = Warehouse.from_settings(settings)
    try:
        with warehouse.transaction() as session:
            versions = session.execute(
                select(ModelRow.version, ModelRow.blob_key).join(City, City.id == ModelRow.city_id)
                .where(City.name == "TESTVILLE")).all()
            assert session.scalar(select(func.count()).select_from(ModelRow)) == 1
        assert [version for version, _ in versions] == [1]
        assert warehouse.blobs.get(versions[0][1])[:4] != b""
    finally:
        warehouse.dispose()
    model = http.get(f"{api.url}/api/cities/TESTVILLE/model")
    assert model.status_code == 200 and model.headers["X-Model-Version"] == "1"

    processes.stop_all()
    for process in processes.started:
        if process is not trainer:
            assert process.popen.returncode == 0, processes.logs()
            assert "Traceback" not in process.log(tail=10**7), processes.logs()
