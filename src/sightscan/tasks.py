"""The task queue (Huey): one queue for crawl/label work, one `training` queue for training.

Embedded default: SqliteHuey files in the data directory; with REDIS_URL: RedisHuey, so
workers on several machines share the queues. Every task is a thin wrapper around a stage
function and works on a job row in the warehouse:

- the job row is the lock: a task only runs after it moved its job from queued to running
  (a conditional UPDATE), and the database allows one active job per city and stage;
- transient faults (HTTP, database) are retried with exponential backoff by Huey, then the
  job fails with the reason; other errors fail it at once;
- a worker killed mid-task stops beating; the refresher queues the job again, and since
  every stage writes in transactions (and publishing is one), nothing half-done remains.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.api import Task
from sqlalchemy.exc import OperationalError

from sightscan.config import Settings, get_settings
from sightscan.errors import ExternalServiceError, SightScanError
from sightscan.labelling.remote import labelling_scheduler
from sightscan.pipeline import Heartbeat, Scheduler
from sightscan.warehouse import Warehouse
from sightscan.warehouse import jobs as job_store
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.models import utcnow

log = logging.getLogger(__name__)

MAIN_QUEUE = "sightscan"
TRAINING_QUEUE = "sightscan-training"
RETRIES = 3
RETRY_DELAY_SECONDS = 10
TRANSIENT = (ExternalServiceError, OperationalError, ConnectionError, TimeoutError)

StageFunction = Callable[[Warehouse, str, dict[str, Any], Heartbeat], dict[str, Any]]


def make_huey(settings: Settings, name: str, *, immediate: bool = False) -> Huey:
    """A Huey instance for one queue: Redis when REDIS_URL is set, else SQLite in the data dir."""
    if settings.redis_url is not None:
        try:
            return RedisHuey(name, url=settings.redis_url.get_secret_value(), immediate=immediate)
        except ImportError:
            from sightscan.errors import ConfigurationError

            raise ConfigurationError(
                "REDIS_URL: needs an extra: pip install 'sightscan[redis]'"
            ) from None
    settings.sightscan_data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        name, filename=str(settings.sightscan_data_dir / f"{name}-queue.db"), immediate=immediate
    )


def _stage_function(stage: str) -> StageFunction:
    # Imported lazily, one stage at a time: a worker on the main queue never loads torch,
    # an API never loads any of them.
    if stage == "crawl":
        from sightscan.crawler.store import run_crawl_stage

        return run_crawl_stage
    if stage == "label":
        from sightscan.labelling.service import run_label_stage

        return run_label_stage
    from sightscan.training.service import run_train_stage

    return run_train_stage


@dataclass
class Queues:
    """The two Huey queues with the pipeline's tasks registered on them."""

    settings: Settings
    warehouse: Warehouse
    main: Huey
    training: Huey
    tasks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, warehouse: Warehouse, *, immediate: bool = False) -> Queues:
        """Build both queues and register the stage tasks on them."""
        queues = cls(
            settings,
            warehouse,
            make_huey(settings, MAIN_QUEUE, immediate=immediate),
            make_huey(settings, TRAINING_QUEUE, immediate=immediate),
        )
        for stage in ("crawl", "label", "train"):
            huey = queues.training if stage == "train" else queues.main
            queues.tasks[stage] = huey.task(
                retries=RETRIES,
                retry_delay=RETRY_DELAY_SECONDS,
                retry_backoff=2,
                context=True,
                name=f"sightscan.{stage}",
            )(queues._task_body(stage))
        return queues

    def _task_body(self, stage: str) -> Callable[..., None]:
        def body(job_id: int, task: Task | None = None) -> None:
            retries_left = task.retries if task is not None else 0
            run_job(self, stage, job_id, final_attempt=retries_left == 0)

        body.__name__ = f"{stage}_task"
        return body

    def enqueue(self, stage: str, job_id: int) -> None:
        """Put a job's task on its queue."""
        self.tasks[stage](job_id)


def run_job(queues: Queues, stage: str, job_id: int, *, final_attempt: bool = True) -> None:
    """Claim the job, run its stage, record the outcome, and queue the follow-up stage."""
    warehouse = queues.warehouse
    with warehouse.transaction() as session:
        if not job_store.claim_job(session, job_id):
            log.info("job %s is not queued any more; skipping", job_id)
            return
        job = job_store.get_job(session, job_id)
    beat = _heartbeat(warehouse, job_id)
    stop_beating = _keep_beating(beat, queues.settings.sightscan_job_stale_seconds / 4)
    try:
        counts = _stage_function(stage)(warehouse, job.city, job.options, beat)
    except TRANSIENT as exc:
        reason = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        with warehouse.transaction() as session:
            job_store.fail_job(session, job_id, reason=reason, final=final_attempt)
        if final_attempt:
            return
        raise  # Huey retries with backoff
    except SightScanError as exc:
        with warehouse.transaction() as session:
            job_store.fail_job(
                session, job_id, reason=str(exc).splitlines()[0] or type(exc).__name__
            )
        return
    except Exception as exc:  # a bug: record it, keep the worker alive
        log.exception("job %s (%s %s) crashed", job_id, stage, job.city)
        with warehouse.transaction() as session:
            job_store.fail_job(session, job_id, reason=f"internal error: {exc.__class__.__name__}")
        return
    finally:
        stop_beating()
    follow_up = counts.pop("next_stage", None)
    follow_up_options = counts.pop("next_options", {})
    with warehouse.transaction() as session:
        finished = job_store.finish_job(session, job_id, counts=counts, attempt=job.attempts)
    if not finished:  # queued again meanwhile (missed heartbeats): the newer attempt decides
        log.warning("job %s was taken over by a newer attempt; not queueing a follow-up", job_id)
        return
    if follow_up:
        scheduler: Scheduler = HueyScheduler(queues)
        if follow_up == "label":
            scheduler = labelling_scheduler(queues.settings, scheduler)
        scheduler.submit(follow_up, job.city, **follow_up_options)


def _heartbeat(warehouse: Warehouse, job_id: int) -> Heartbeat:
    def beat(counts: dict[str, Any] | None = None) -> None:
        with warehouse.transaction() as session:
            job_store.heartbeat(session, job_id, counts=counts)

    return beat


def _keep_beating(beat: Heartbeat, interval: float) -> Callable[[], None]:
    """Beat from a background thread while the stage runs; returns the stop function."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                beat(None)
            except Exception:  # a missed beat is retried next time
                log.warning("heartbeat failed", exc_info=True)

    thread = threading.Thread(target=loop, name="job-heartbeat", daemon=True)
    thread.start()

    def stop_beating() -> None:
        stop.set()
        thread.join(timeout=5)

    return stop_beating


class HueyScheduler:
    """The Scheduler (sightscan.pipeline) of a real deployment: job row + Huey task."""

    def __init__(self, queues: Queues) -> None:
        self.queues = queues

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        warehouse: Warehouse | None = None,
        *,
        immediate: bool = False,
    ) -> HueyScheduler:
        """Open the queues the settings point at."""
        settings = settings or get_settings()
        warehouse = warehouse or Warehouse.from_settings(settings)
        return cls(Queues.create(settings, warehouse, immediate=immediate))

    def submit(self, stage: str, city: str, **options: Any) -> int | None:
        """Queue `stage` for `city`; the job id, or None when one is already queued or running."""
        with self.queues.warehouse.transaction() as session:
            city_row = get_or_create_city(session, city)
            job_id = job_store.create_job(
                session, city_id=city_row.id, stage=stage, options=options
            )
        if job_id is not None:
            self.queues.enqueue(stage, job_id)
        return job_id

    def requeue_lost_jobs(self, *, stale_after_seconds: int) -> list[int]:
        """Queue again the jobs whose worker died (no heartbeat) or whose message was lost."""
        older_than = utcnow() - timedelta(seconds=stale_after_seconds)
        with self.queues.warehouse.transaction() as session:
            stale = job_store.requeue_stale_jobs(session, older_than=older_than)
            waiting = job_store.queued_jobs(session, older_than=older_than)
        pending = {stage: self.queues.tasks[stage] for stage in ("crawl", "label", "train")}
        queued_ids = _ids_in_queues(self.queues)
        requeued: list[int] = []
        for job in waiting:
            if job.id not in queued_ids:
                pending[job.stage](job.id)
                requeued.append(job.id)
        return sorted(set(stale) | set(requeued))


def _ids_in_queues(queues: Queues) -> set[int]:
    """Job ids whose task messages still wait in a queue (or in its schedule for a retry)."""
    ids: set[int] = set()
    for huey in (queues.main, queues.training):
        for message in list(huey.pending()) + list(huey.scheduled()):
            if message.args:
                ids.add(int(message.args[0]))
    return ids
