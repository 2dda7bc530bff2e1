"""Fault tests with real processes: a worker killed (SIGKILL), a worker paused (SIGSTOP) past
the stale time and woken (SIGCONT), and the database restarted during an upload burst.

Each asserts what docs/reliability.md promises: nothing acknowledged is lost, nothing is
stored twice, no row is without its blob, at most one version per training attempt (and
exactly one version for the city). The database restart uses a PostgreSQL cluster of its
own (initdb in a temporary folder): the machine's shared server is never restarted.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from sightscan.config import load_settings
from sightscan.warehouse import Warehouse
from sightscan.warehouse.models import City, ImageRow, ModelRow

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
PG_BIN = Path(os.environ.get("SIGHTSCAN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


# ---------------------------------------------------------------- helpers
def open_warehouse(env: dict[str, str]) -> Warehouse:
    """The warehouse the processes of `env` share, opened from this test process."""
    names = {"SIGHTSCAN_DATA_DIR", "SIGHTSCAN_BLOB_URL", "PGHOST", "PGPORT", "PGUSER",
             "PGDATABASE"}
    return Warehouse.from_settings(load_settings(
        **{k.lower(): v for k, v in env.items() if k in names}))


def assert_every_row_has_its_blob(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        keys = list(session.scalars(select(ImageRow.blob_key)))
        keys += list(session.scalars(select(ModelRow.blob_key)))
    missing = [key for key in keys if not warehouse.blobs.exists(key)]
    assert not missing, f"rows without their blob: {missing[:5]}"


def city_versions(warehouse: Warehouse, city: str) -> list[int]:
    with warehouse.transaction() as session:
        return list(session.scalars(
            select(ModelRow.version).join(City, City.id == ModelRow.city_id)
            .where(City.name == city).order_by(ModelRow.version)))


@dataclass
class Pipeline:
    """`sightscan api`, a main-queue worker and the refresher on the embedded defaults."""

    env: dict[str, str]
    api: Api
    processes: Processes

    def start_trainer(self, name: str) -> Process:
        return self.processes.start(name, "worker", "--queue", "training", env=self.env)

    def train_job(self, city: str = "TESTVILLE") -> dict[str, Any] | None:
        jobs = self.api.jobs(city)
        failed = [job for job in jobs if job["state"] == "failed"]
        assert not failed, f"{failed}\n{self.processes.logs()}"
        train = [job for job in jobs if job["stage"] == "train"]
        return train[0] if train else None

    def wait_for_training_loop(self, attempt: int) -> dict[str, Any]:
        def in_loop() -> dict[str, Any] | None:
            job = self.train_job()
            if (job is not None and job["state"] == "running" and job["attempts"] == attempt
                    and "epoch" in job["counts"]):
                return job
            return None

        return dict(wait_for(in_loop, timeout=240, interval=0.2,
                             what=f"training attempt {attempt} in its loop",
                             on_timeout=self.processes.logs))

    def wait_for_done(self) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.train_job()
            return job if job is not None and job["state"] == "done" else None

        return dict(wait_for(done, timeout=300, interval=1, what="the train job to finish",
                             on_timeout=self.processes.logs))


@pytest.fixture
def pipeline(tmp_path: Path, photo_folder: Path, processes: Processes,
             http: httpx.Client) -> Pipeline:
    """The pipeline without a training worker, with a city requested from a photo folder."""
    port = free_port()
    env = child_environment(SIGHTSCAN_DATA_DIR=str(tmp_path / "data"),
                            SIGHTSCAN_API_KEY=API_KEY, **FAST_PIPELINE_ENV)
    processes.start("api", "api", "--port", str(port), env=env)
    processes.start("worker", "worker", env=env)
    processes.start("refresher", "refresher", env=env)
    api = Api(f"http://127.0.0.1:{port}", http)
    wait_for(api.healthy, timeout=90, what="the API", on_timeout=processes.logs)
    response = http.post(f"{api.url}/api/cities/Testville/add", params={"force": "true"},
                         headers={"X-API-Key": API_KEY}, json={"photo_folder": str(photo_folder)})
    assert response.status_code == 200, response.text
    return Pipeline(env, api, processes)


def assert_one_version_from_the_train_job(pipeline: Pipeline, done: dict[str, Any]) -> None:
    assert done["counts"]["published"] is True
    assert pipeline.api.model_version("TESTVILLE") == 1
    assert [job["stage"] for job in pipeline.api.jobs("TESTVILLE")].count("train") == 1
    warehouse = open_warehouse(pipeline.env)
    try:
        assert city_versions(warehouse, "TESTVILLE") == [1]
        assert_every_row_has_its_blob(warehouse)
        with warehouse.transaction() as session:
            images = session.scalar(select(func.count()).select_from(ImageRow))
            distinct = session.scalar(select(func.count(func.distinct(ImageRow.sha256))))
        assert images == distinct == 36  # the folder's photos, each stored once
    finally:
        warehouse.dispose()


# ---------------------------------------------------------------- kill -9
def test_a_training_worker_killed_with_sigkill_loses_nothing_and_publishes_once(
    pipeline: Pipeline,
) -> None:
    first = pipeline.start_trainer("trainer-1")
    running = pipeline.wait_for_training_loop(attempt=1)

    first.kill()  # no graceful shutdown, no job update
    assert pipeline.api.model_version("TESTVILLE") == -1
    pipeline.start_trainer("trainer-2")

    done = pipeline.wait_for_done()
    assert (done["id"], done["attempts"]) == (running["id"], 2)
    assert_one_version_from_the_train_job(pipeline, done)


# ---------------------------------------------------------------- SIGSTOP / SIGCONT
def test_a_training_worker_paused_past_the_stale_time_cannot_publish_when_it_wakes(
    pipeline: Pipeline,
) -> None:
    paused = pipeline.start_trainer("trainer-1")
    running = pipeline.wait_for_training_loop(attempt=1)

    os.kill(paused.popen.pid, signal.SIGSTOP)  # a long GC pause, a frozen VM, a debugger
    try:
        pipeline.start_trainer("trainer-2")
        pipeline.wait_for_training_loop(attempt=2)  # stale (10 s), queued again, claimed
    finally:
        os.kill(paused.popen.pid, signal.SIGCONT)  # attempt 1 wakes and trains on

    done = pipeline.wait_for_done()
    assert (done["id"], done["attempts"]) == (running["id"], 2)
    refused = "attempt 1 is no longer current; nothing written"  # the fence, at publication
    wait_for(lambda: refused in paused.log(tail=10**6), timeout=240,
             interval=1, what="the woken attempt to be refused", on_timeout=pipeline.processes.logs)
    assert paused.alive(), paused.log()  # refused, not crashed
    assert_one_version_from_the_train_job(pipeline, done)
    assert pipeline.train_job() == done  # the woken attempt changed nothing


# ---------------------------------------------------------------- database restart
@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of this test's own (not the machine's shared server)."""

    folder: Path
    port: int

    def ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"),
                        "-D", str(self.folder / "data"), "-w", "-t", "60", *args],
                       check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-k {self.folder} -c max_connections=50")
        self.ctl("-o", options, "-l", str(self.folder / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("-m", mode, "stop")


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None or os.getuid() != 0:
        pytest.skip(f"a private PostgreSQL cluster needs root, runuser and {PG_BIN}/initdb")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need pip install 'sightscan[postgres]'")
    folder = Path(tempfile.mkdtemp(prefix="sightscan-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    cluster = PrivateCluster(folder, free_port())
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D",
                        str(folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(folder, ignore_errors=True)


def photo(number: int) -> bytes:
    image = Image.new("RGB", (48, 32), (number % 251, number * 7 % 253, 90))
    image.putpixel((0, 0), (number // 251 % 256, 1, 2))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_database_restart_during_an_upload_burst_loses_no_acknowledged_upload(
    private_cluster: PrivateCluster, tmp_path: Path, processes: Processes,
) -> None:
    port = free_port()
    env = child_environment(
        SIGHTSCAN_DATA_DIR=str(tmp_path / "data"), PGHOST="127.0.0.1",
        PGPORT=str(private_cluster.port), PGUSER="postgres", PGDATABASE="postgres",
        SIGHTSCAN_RATE_LIMIT_PER_MINUTE="100000")
    processes.start("api", "api", "--port", str(port), env=env)
    photos = [photo(n) for n in range(240)]
    acknowledged: dict[int, int] = {}  # photo number -> image id
    failures: list[int] = []
    lock = threading.Lock()

    with httpx.Client(timeout=30) as client:
        api = Api(f"http://127.0.0.1:{port}", client)
        wait_for(api.healthy, timeout=90, what="the API", on_timeout=processes.logs)

        def upload(number: int) -> None:
            # A client retries until the upload is acknowledged, as a phone app would.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    response = client.post(f"{api.url}/api/cities/Berlin/image",
                                           files={"image": (f"{number}.png", photos[number],
                                                            "image/png")})
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code in (200, 201):
                    with lock:
                        acknowledged[number] = int(response.json()["image_id"])
                    return
                if response is not None:
                    assert response.status_code == 503, response.text  # never a 500
                    with lock:
                        failures.append(number)
                time.sleep(0.3)

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(upload, n) for n in range(len(photos))]
            wait_for(lambda: len(acknowledged) >= 60, timeout=120, interval=0.05,
                     what="the first uploads", on_timeout=processes.logs)
            private_cluster.stop("fast")  # the database goes away mid-burst ...
            time.sleep(2)
            private_cluster.start()  # ... and comes back
            for future in futures:
                future.result()

    assert len(acknowledged) == len(photos), f"not acknowledged: {len(photos) - len(acknowledged)}"
    assert failures, "expected some uploads to meet the restart (503) and be retried"
    warehouse = open_warehouse(env)
    try:
        with warehouse.transaction() as session:
            rows = {i: sha for i, sha in session.execute(select(ImageRow.id, ImageRow.sha256))}
        assert len(rows) == len(photos)  # nothing stored twice, nothing acknowledged lost
        for number, image_id in acknowledged.items():
            assert rows[image_id] == hashlib.sha256(photos[number]).hexdigest()
        assert_every_row_has_its_blob(warehouse)
    finally:
        warehouse.dispose()
