"""GPU training on demand: a real boto3 client against moto's EC2 in server mode, the
warehouse's instance log, backoff on AWS errors, and the worker's idle exit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from huey import SqliteHuey
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from typer.testing import CliRunner

from fakes.server import FakeServer, Reply, fake_server  # noqa: F401  (fixture)
from sightscan.cli import app as cli_app
from sightscan.cloud import GpuOnDemand, gpu_on_demand_enabled
from sightscan.config import Settings, load_settings
from sightscan.refresher import Refresher
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.cloud import beat_worker, gpu_events, gpu_hours, record_gpu_event
from sightscan.warehouse.jobs import create_job, list_jobs
from sightscan.warehouse.models import WorkerHeartbeat
from sightscan.worker_presence import WorkerPresence

# moto's EC2 backend takes ~15 s to load on first use; the module stays in CI as `slow`.
pytestmark = pytest.mark.slow

REGION = "eu-west-1"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
AUTH_FAILURE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>AuthFailure</Code>'
    "<Message>AWS was not able to validate the provided access credentials</Message></Error>"
    "</Errors><RequestID>5c0b1a4e-0000-4000-8000-000000000000</RequestID></Response>"
)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def ec2(url: str) -> Any:
    return boto3.client("ec2", region_name=REGION, endpoint_url=url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def image_id(moto_url: str) -> str:
    """One of moto's machine images (listing them is slow: once per module)."""
    return str(ec2(moto_url).describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


@pytest.fixture
def instance_id(moto_url: str, image_id: str) -> str:
    """A stopped GPU instance in moto's EC2."""
    client = ec2(moto_url)
    made = client.run_instances(ImageId=image_id, MinCount=1, MaxCount=1,
                                InstanceType="g4dn.xlarge")
    instance = made["Instances"][0]["InstanceId"]
    client.stop_instances(InstanceIds=[instance])
    return str(instance)


def state_of(url: str, instance: str) -> str:
    answer = ec2(url).describe_instances(InstanceIds=[instance])
    return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


def gpu_settings(tmp_path: Path, endpoint: str, instance: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "sightscan_data_dir": tmp_path / "data",
        "is_mts_gpu_enabled": True,
        "mts_ec2_instance_id": instance,
        "aws_region": REGION,
        "aws_access_key": "testing",  # the seed's name for the key id
        "aws_secret_access_key": "testing",
        "sightscan_ec2_endpoint_url": endpoint,
        "sightscan_gpu_no_heartbeat_minutes": 20,
        "sightscan_gpu_max_hours_per_day": 3,
        "sightscan_job_stale_seconds": 120,
    }
    values.update(overrides)
    return load_settings(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manager(settings: Settings, clock: Clock | None = None) -> tuple[GpuOnDemand, Warehouse]:
    warehouse = Warehouse.from_settings(settings, migrate=True)
    gpu = GpuOnDemand.from_settings(settings, warehouse)
    gpu.monotonic = clock or Clock()
    return gpu, warehouse


def queue_training(warehouse: Warehouse, city: str = "Testville") -> None:
    with warehouse.transaction() as session:
        create_job(session, city_id=get_or_create_city(session, city).id, stage="train")


def actions(warehouse: Warehouse) -> list[str]:
    with warehouse.transaction() as session:
        return [event["action"] for event in reversed(gpu_events(session, limit=50))]


def beat(warehouse: Warehouse, at: datetime) -> None:
    with warehouse.transaction() as session:
        beat_worker(session, worker_id="gpu-1", queue="training", host="gpu", now=at)


def test_on_demand_needs_both_seed_settings(tmp_path: Path) -> None:
    assert not gpu_on_demand_enabled(load_settings(mts_ec2_instance_id="i-1"))
    assert not gpu_on_demand_enabled(load_settings(is_mts_gpu_enabled=True))
    settings = load_settings(is_mts_gpu_enabled=True, mts_ec2_instance_id="i-1",
                             aws_access_key="seed-key")
    assert gpu_on_demand_enabled(settings)
    assert settings.ec2_access_key_id is not None
    assert settings.ec2_access_key_id.get_secret_value() == "seed-key"


def test_waiting_training_starts_the_instance_then_a_heartbeat_keeps_it_running(
    tmp_path: Path, moto_url: str, instance_id: str
) -> None:
    gpu, warehouse = manager(gpu_settings(tmp_path, moto_url, instance_id))
    queue_training(warehouse)

    assert gpu.reconcile(T0) == "started"
    assert state_of(moto_url, instance_id) in ("pending", "running")
    assert gpu.reconcile(T0 + timedelta(minutes=5)) == "booting"

    beat(warehouse, T0 + timedelta(minutes=24))
    assert gpu.reconcile(T0 + timedelta(minutes=25)).startswith("running (1 training worker")
    assert state_of(moto_url, instance_id) == "running"
    assert actions(warehouse) == ["start"]
    warehouse.dispose()


def test_an_instance_running_without_a_worker_heartbeat_is_stopped(
    tmp_path: Path, moto_url: str, instance_id: str
) -> None:
    gpu, warehouse = manager(gpu_settings(tmp_path, moto_url, instance_id))
    queue_training(warehouse)
    gpu.reconcile(T0)
    beat(warehouse, T0 + timedelta(minutes=3))  # the worker came up, then died

    outcome = gpu.reconcile(T0 + timedelta(minutes=21))
    assert outcome == "stopped: no training worker heartbeat for 20 minutes"
    assert state_of(moto_url, instance_id) in ("stopping", "stopped")
    assert actions(warehouse) == ["start", "stop"]
    with warehouse.transaction() as session:
        hours = gpu_hours(session, instance_id=instance_id, since=T0 - timedelta(hours=8),
                          now=T0 + timedelta(hours=5))
    assert hours == pytest.approx(21 / 60)
    warehouse.dispose()


def test_nothing_starts_without_waiting_training_jobs_or_with_a_live_worker(
    tmp_path: Path, moto_url: str, instance_id: str
) -> None:
    gpu, warehouse = manager(gpu_settings(tmp_path, moto_url, instance_id))
    assert gpu.reconcile(T0).startswith("nothing to do")
    queue_training(warehouse)
    beat(warehouse, T0)  # a training worker elsewhere is alive: it will take the job
    assert gpu.reconcile(T0).startswith("nothing to do")
    assert state_of(moto_url, instance_id) == "stopped"
    assert actions(warehouse) == []
    warehouse.dispose()


def test_an_instance_that_stopped_itself_is_recorded_and_started_again_when_needed(
    tmp_path: Path, moto_url: str, instance_id: str
) -> None:
    gpu, warehouse = manager(gpu_settings(tmp_path, moto_url, instance_id))
    queue_training(warehouse)
    gpu.reconcile(T0)
    ec2(moto_url).stop_instances(InstanceIds=[instance_id])  # its unit powered it off
    assert gpu.reconcile(T0 + timedelta(minutes=50)) == "started"  # the job still waits
    assert actions(warehouse) == ["start", "stopped", "start"]
    warehouse.dispose()


def test_the_daily_cap_refuses_a_start_once_and_stops_a_running_instance(
    tmp_path: Path, moto_url: str, instance_id: str
) -> None:
    gpu, warehouse = manager(gpu_settings(tmp_path, moto_url, instance_id,
                                          sightscan_gpu_max_hours_per_day=1))
    queue_training(warehouse)
    assert gpu.reconcile(T0) == "started"
    beat(warehouse, T0 + timedelta(minutes=61))
    assert gpu.reconcile(T0 + timedelta(minutes=61)) == (
        "stopped: daily cap of 1 instance hours reached")
    ec2(moto_url).stop_instances(InstanceIds=[instance_id])
    assert gpu.reconcile(T0 + timedelta(minutes=70)) == "refused: daily cap reached"
    assert gpu.reconcile(T0 + timedelta(minutes=75)) == "refused: daily cap reached"
    assert actions(warehouse) == ["start", "stop", "refused"]  # refused once, not each check
    assert state_of(moto_url, instance_id) == "stopped"
    warehouse.dispose()


def test_an_unknown_instance_id_waits_with_the_reason_and_backs_off(
    tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    settings = gpu_settings(tmp_path, moto_url, "i-0123456789abcdef0",
                            sightscan_gpu_check_seconds=30)
    gpu, warehouse = manager(settings, clock)
    queue_training(warehouse)

    assert gpu.reconcile(T0).startswith("error: EC2 describe_instances refused: "
                                         "InvalidInstanceID.NotFound")
    assert gpu.reconcile(T0) == "waiting (backoff after an error)"  # no call, no new line
    clock.now += 31
    assert gpu.reconcile(T0).startswith("error:")
    clock.now += 31  # the second failure doubled the wait to 60 s
    assert gpu.reconcile(T0) == "waiting (backoff after an error)"
    assert actions(warehouse) == ["error", "error"]
    with warehouse.transaction() as session:
        assert [job.state for job in list_jobs(session)] == ["queued"]

    for name, value in {"SIGHTSCAN_DATA_DIR": str(tmp_path / "data"), "IS_MTS_GPU_ENABLED": "1",
                        "MTS_EC2_INSTANCE_ID": "i-0123456789abcdef0"}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli_app, ["status"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "training jobs wait: EC2 describe_instances refused: InvalidInstanceID.NotFound" in (
        " ".join(result.output.split()))
    warehouse.dispose()


def test_refused_credentials_are_recorded_without_the_secret(
    tmp_path: Path, fake_server: FakeServer  # noqa: F811
) -> None:
    fake_server.route("POST", "/", Reply(401, AUTH_FAILURE, {"Content-Type": "text/xml"}))
    settings = gpu_settings(tmp_path, fake_server.url, "i-0123456789abcdef0",
                            aws_secret_access_key="very-secret-value")
    gpu, warehouse = manager(settings)
    queue_training(warehouse)
    assert gpu.reconcile(T0).startswith("error: EC2 describe_instances refused: AuthFailure")
    with warehouse.transaction() as session:
        [event] = gpu_events(session)
    assert "AWS was not able to validate" in event["reason"]
    assert "very-secret-value" not in str(event)
    assert fake_server.requests[0].form()["Action"] == ["DescribeInstances"]
    warehouse.dispose()


def test_the_refresher_checks_the_instance_on_its_interval(
    tmp_path: Path, moto_url: str, instance_id: str
) -> None:
    settings = gpu_settings(tmp_path, moto_url, instance_id)
    warehouse = Warehouse.from_settings(settings, migrate=True)
    queue_training(warehouse)
    refresher = Refresher(settings, warehouse, scheduler=None)  # type: ignore[arg-type]
    refresher._last = {"refresh": 0.0, "label": 0.0, "train": 0.0}  # only the GPU is due
    assert refresher.run_once(now=1.0) == {"gpu": "started"}
    assert refresher.run_once(now=2.0) == {}  # not due again for 30 s
    warehouse.dispose()


def test_gpu_hours_count_only_the_asked_window(tmp_path: Path) -> None:
    warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=tmp_path), migrate=True)
    with warehouse.transaction() as session:
        for action, at in (("start", T0 - timedelta(hours=2)), ("stop", T0 + timedelta(hours=1)),
                           ("start", T0 + timedelta(hours=3))):
            record_gpu_event(session, instance_id="i-1", action=action, state=None, reason=None,
                             now=at)
        hours = gpu_hours(session, instance_id="i-1", since=T0, now=T0 + timedelta(hours=4))
    assert hours == pytest.approx(2.0)
    warehouse.dispose()


# ---------------------------------------------------------------- the worker's side
def test_a_worker_beats_and_reports_idleness_after_its_idle_minutes(tmp_path: Path) -> None:
    warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=tmp_path), migrate=True)
    huey = SqliteHuey("t", filename=str(tmp_path / "q.db"))
    idle = threading.Event()
    presence = WorkerPresence(warehouse, huey, "training", beat_seconds=0.05,
                              exit_when_idle_minutes=0.2 / 60, on_idle=idle.set).start()
    with warehouse.transaction() as session:
        assert session.scalars(select(WorkerHeartbeat.queue)).all() == ["training"]
    assert idle.wait(5)
    presence.stop()
    with warehouse.transaction() as session:
        assert session.scalars(select(WorkerHeartbeat.queue)).all() == []
    warehouse.dispose()


def test_pending_work_keeps_a_worker_from_being_idle(tmp_path: Path) -> None:
    huey = SqliteHuey("t", filename=str(tmp_path / "q.db"))
    task = huey.task()(lambda: None)
    task()  # one message waits
    clock = Clock()
    warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=tmp_path), migrate=True)
    presence = WorkerPresence(warehouse, huey, "training", beat_seconds=60,
                              exit_when_idle_minutes=1, clock=clock)
    clock.now += 120
    assert presence.idle_seconds() == 0
    huey.flush()
    clock.now += 30
    assert presence.idle_seconds() == 30
    warehouse.dispose()


def test_the_training_worker_exits_by_itself_when_idle(tmp_path: Path) -> None:
    env = {"SIGHTSCAN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join(sys.path)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sightscan.cli", "worker", "--queue", "training",
         "--exit-when-idle", "0.02"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - started < 40
    refused = subprocess.run(
        [sys.executable, "-m", "sightscan.cli", "worker", "--exit-when-idle", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: expected --exit-when-idle minutes > 0, got 0"]


def test_the_seed_variable_names_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"IS_MTS_GPU_ENABLED": "true", "MTS_EC2_INSTANCE_ID": "i-0abc",
                        "AWS_REGION": "eu-central-1", "AWS_ACCESS_KEY": "AKIASEED",
                        "AWS_SECRET_ACCESS_KEY": "s", "SIGHTSCAN_GPU_MAX_HOURS_PER_DAY": "1.5"
                        }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert gpu_on_demand_enabled(settings)
    assert (settings.mts_ec2_instance_id, settings.ec2_region) == ("i-0abc", "eu-central-1")
    assert settings.ec2_access_key_id is not None
    assert settings.ec2_access_key_id.get_secret_value() == "AKIASEED"
    assert settings.sightscan_gpu_max_hours_per_day == 1.5
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMODERN")  # the standard name wins
    assert load_settings().ec2_access_key_id.get_secret_value() == "AKIAMODERN"  # type: ignore[union-attr]
