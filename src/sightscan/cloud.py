"""GPU training on demand: the refresher starts the configured EC2 instance when training
jobs wait and no training worker is alive, and stops it when it runs without one.

The instance runs `sightscan worker --queue training --exit-when-idle MINUTES` at boot and
powers itself off when that exits (deploy/), so stopping here is the cost guard, not the
normal end: an instance that runs with no worker heartbeat for
SIGHTSCAN_GPU_NO_HEARTBEAT_MINUTES is stopped, and it never runs more than
SIGHTSCAN_GPU_MAX_HOURS_PER_DAY hours a UTC day. Every start, stop, refusal and error is
recorded in the warehouse (`gpu_instance_events`); `sightscan status` and GET /api/jobs show
them. AWS errors (unknown instance, refused credentials, no network) leave the jobs queued,
are recorded with their reason, and are retried with exponential backoff, never in a loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sightscan.config import Settings
from sightscan.errors import ConfigurationError, ExternalServiceError
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cloud import (
    alive_workers,
    gpu_hours,
    last_gpu_event,
    last_run_event,
    record_gpu_event,
    waiting_training_jobs,
)
from sightscan.warehouse.models import utcnow

log = logging.getLogger(__name__)

TRAINING_QUEUE = "training"
MAX_BACKOFF_SECONDS = 3600.0


class CloudError(ExternalServiceError):
    """The cloud API refused or failed a call; the message is one line, without secrets."""


def gpu_on_demand_enabled(settings: Settings) -> bool:
    """IS_MTS_GPU_ENABLED and MTS_EC2_INSTANCE_ID both set: the refresher manages the instance."""
    return bool(settings.is_mts_gpu_enabled and settings.mts_ec2_instance_id)


def make_ec2_client(settings: Settings) -> Any:
    """A boto3 EC2 client for the instance's region, with bounded timeouts and retries."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigurationError(
            "MTS_EC2_INSTANCE_ID: needs boto3: pip install 'sightscan[aws]'"
        ) from None
    key_id = settings.ec2_access_key_id
    secret = settings.aws_secret_access_key
    return boto3.client(
        "ec2",
        region_name=settings.ec2_region,
        endpoint_url=settings.sightscan_ec2_endpoint_url,
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=Config(
            connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}
        ),
    )


class Ec2Instance:
    """One EC2 instance through a boto3 client; botocore errors become CloudError."""

    def __init__(self, client: Any, instance_id: str) -> None:
        self._client = client
        self.instance_id = instance_id

    def state(self) -> str:
        """pending | running | stopping | stopped | shutting-down | terminated."""
        answer = self._call("describe_instances", InstanceIds=[self.instance_id])
        for reservation in answer.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                return str(instance["State"]["Name"])
        raise CloudError(f"EC2 instance {self.instance_id} not found")

    def start(self) -> None:
        """Ask EC2 to start the (stopped) instance."""
        self._call("start_instances", InstanceIds=[self.instance_id])

    def stop(self) -> None:
        """Ask EC2 to stop the instance."""
        self._call("stop_instances", InstanceIds=[self.instance_id])

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = getattr(self._client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            message = " ".join(str(error.get("Message", "")).split())[:200]
            raise CloudError(f"EC2 {operation} refused: {code}: {message}") from None
        except BotoCoreError as exc:
            reason = " ".join(str(exc).split())[:200]
            raise CloudError(f"EC2 {operation} failed: {type(exc).__name__}: {reason}") from None
        return answer


@dataclass
class GpuOnDemand:
    """Reconciles the GPU instance with the training queue; one `reconcile` per check."""

    settings: Settings
    warehouse: Warehouse
    instance: Ec2Instance
    monotonic: Callable[[], float] = time.monotonic
    _failures: int = 0
    _next_try: float = field(default=float("-inf"))

    @classmethod
    def from_settings(cls, settings: Settings, warehouse: Warehouse) -> GpuOnDemand:
        """The manager of MTS_EC2_INSTANCE_ID with a boto3 client from the settings."""
        if not settings.mts_ec2_instance_id:
            raise ConfigurationError("MTS_EC2_INSTANCE_ID: not set")
        instance = Ec2Instance(make_ec2_client(settings), settings.mts_ec2_instance_id)
        return cls(settings, warehouse, instance)

    def reconcile(self, now: datetime | None = None) -> str:
        """Start, stop or leave the instance; returns what it did, in words."""
        if self.monotonic() < self._next_try:
            return "waiting (backoff after an error)"
        now = now or utcnow()
        s = self.settings
        instance_id = self.instance.instance_id
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        with self.warehouse.transaction() as session:
            waiting = waiting_training_jobs(session)
            alive = alive_workers(
                session,
                queue=TRAINING_QUEUE,
                since=now - timedelta(seconds=s.sightscan_job_stale_seconds),
            )
            hours = gpu_hours(session, instance_id=instance_id, since=day_start, now=now)
            last_run = last_run_event(session, instance_id)
            last = last_gpu_event(session, instance_id)
        try:
            state = self.instance.state()
            if state == "stopped" and last_run is not None and last_run.action == "start":
                self._record("stopped", state, "the instance stopped (itself when idle)", now)
            if state in ("pending", "running"):
                return self._guard_running(state, alive, hours, last_run, now)
            if state != "stopped" or not waiting or alive:
                return f"nothing to do (instance {state}, {waiting} waiting, {alive} alive)"
            if hours >= s.sightscan_gpu_max_hours_per_day:
                reason = (
                    f"{waiting} training job(s) wait, but the daily cap of "
                    f"{s.sightscan_gpu_max_hours_per_day:g} instance hours is reached"
                )
                if last is None or last.action != "refused" or last.reason != reason:
                    self._record("refused", state, reason, now)
                return "refused: daily cap reached"
            self.instance.start()
        except CloudError as exc:
            return self._failed(exc, now)
        self._failures = 0
        self._record(
            "start", "pending", f"{waiting} training job(s) wait and no training worker is alive",
            now,
        )
        log.info("started GPU instance %s for %d waiting training job(s)", instance_id, waiting)
        return "started"

    def _guard_running(
        self, state: str, alive: int, hours: float, last_run: Any, now: datetime
    ) -> str:
        s = self.settings
        self._failures = 0
        reason = None
        if hours >= s.sightscan_gpu_max_hours_per_day:
            reason = f"daily cap of {s.sightscan_gpu_max_hours_per_day:g} instance hours reached"
        elif not alive:
            since = last_run.created_at if last_run is not None else None
            since = since if since is None or since.tzinfo else since.replace(tzinfo=now.tzinfo)
            limit = timedelta(minutes=s.sightscan_gpu_no_heartbeat_minutes)
            if since is None or last_run.action != "start" or now - since >= limit:
                reason = (
                    f"no training worker heartbeat for {s.sightscan_gpu_no_heartbeat_minutes} "
                    "minutes"
                )
        if reason is None:
            return f"running ({alive} training worker(s) alive)" if alive else "booting"
        try:
            self.instance.stop()
        except CloudError as exc:
            return self._failed(exc, now)
        self._record("stop", state, reason, now)
        log.warning("stopped GPU instance %s: %s", self.instance.instance_id, reason)
        return f"stopped: {reason}"

    def _failed(self, exc: CloudError, now: datetime) -> str:
        base = self.settings.sightscan_gpu_check_seconds
        delay = min(MAX_BACKOFF_SECONDS, base * 2.0**self._failures)
        self._failures += 1
        self._next_try = self.monotonic() + delay
        reason = f"{exc}; training jobs wait; next try in {delay:.0f} s"
        self._record("error", None, reason, now)
        log.warning("GPU instance %s: %s", self.instance.instance_id, reason)
        return f"error: {exc}"

    def _record(self, action: str, state: str | None, reason: str, now: datetime) -> None:
        with self.warehouse.transaction() as session:
            record_gpu_event(
                session,
                instance_id=self.instance.instance_id,
                action=action,
                state=state,
                reason=reason,
                now=now,
            )
