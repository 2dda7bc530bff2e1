"""The task queue (Huey): one queue for crawl/label work, one `training` queue for training.

Embedded default: SqliteHuey files in the data directory; with REDIS_URL: RedisHuey, so
workers on several machines share the queues. Every task is a thin wrapper around a stage
function and works on a job row in the warehouse:

- the job row is the lock: a task only runs after it moved its job from queued to running
  (a conditional UPDATE), and the database allows one active job per city and stage;
- transient faults (HTTP, database) are retried with exponential backoff by Huey, then the
  job fails with the reason; other errors fail it at once;
- a worker killed mid-task stops beating; the refresher queues the job again, and since
  every stage writes in transactions (and publishing is one), nothing half-done remains;
- the job attempt is a fencing token: a worker that was paused past the stale time and lost
  its job to a newer attempt cannot publish, store labels or end the job (`pipeline.Fence`);
- a worker told to stop (its stop flag) ends its stage between steps and queues the job again.
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
from sightscan.errors import (
    ConfigurationError,
    ExternalServiceError,
    InvalidInputError,
    SightScanError,
    StageInterrupted,
    StaleAttemptError,
)
from sightscan.labelling.remote import labelling_scheduler
from sightscan.pipeline import (
    FollowUp,
    Heartbeat,
    Stage,
    StageResult,
    StageRun,
    attempt_fence,
    record_job,
)
from sightscan.warehouse import Warehouse
from sightscan.warehouse import jobs as job_store
from sightscan.warehouse.models import utcnow

log = logging.getLogger(__name__)

MAIN_QUEUE = "sightscan"
TRAINING_QUEUE = "sightscan-training"
RETRIES = 3
RETRY_DELAY_SECONDS = 10
TRANSIENT = (ExternalServiceError, OperationalError, ConnectionError, TimeoutError)
REQUEUED_REASON = "worker stopped; queued again"

StageFunction = Callable[[Warehouse, StageRun], StageResult]


def make_huey(settings: Settings, name: str) -> Huey:
    """A Huey instance for one queue: Redis when REDIS_URL is set, else SQLite in the data dir."""
    if settings.redis_url is not None:
        try:
            return RedisHuey(name, url=settings.redis_url.get_secret_value())
        except ImportError:
            raise ConfigurationError(
                "REDIS_URL: needs an extra: pip install 'sightscan[redis]'"
            ) from None
    settings.sightscan_data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(settings.sightscan_data_dir / f"{name}-queue.db"))


def stage_function(stage: Stage) -> StageFunction:
    """The function that runs `stage` (imported on first use)."""
    # Imported lazily, one stage at a time: a worker on the main queue never loads torch,
    # an API never loads any of them.
    if stage is Stage.CRAWL:
        from sightscan.crawler.store import run_crawl_stage

        return run_crawl_stage
    if stage is Stage.LABEL:
        from sightscan.labelling.service import run_label_stage

        return run_label_stage
    if stage is Stage.TRAIN:
        from sightscan.training.service import run_train_stage

        return run_train_stage
    raise ConfigurationError(f"no function runs the stage {stage!r}")  # a new Stage member


@dataclass
class Queues:
    """The two Huey queues with the pipeline's tasks registered on them.

    `stop` is the worker's stop flag: running stages check it and end early.
    """

    settings: Settings
    warehouse: Warehouse
    main: Huey
    training: Huey
    tasks: dict[Stage, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, settings: Settings, warehouse: Warehouse) -> Queues:
        """Build both queues and register the stage tasks on them."""
        queues = cls(
            settings,
            warehouse,
            make_huey(settings, MAIN_QUEUE),
            make_huey(settings, TRAINING_QUEUE),
        )
        for stage in Stage:
            queues.tasks[stage] = queues.huey_for(stage).task(
                retries=RETRIES,
                retry_delay=RETRY_DELAY_SECONDS,
                retry_backoff=2,
                context=True,
                name=f"sightscan.{stage.value}",
            )(queues._task_body(stage))
        return queues

    def huey_for(self, stage: Stage) -> Huey:
        """The queue a stage runs on: training has its own (GPU) workers."""
        return self.training if stage is Stage.TRAIN else self.main

    def _task_body(self, stage: Stage) -> Callable[..., None]:
        def body(job_id: int, task: Task | None = None) -> None:
            retries_left = task.retries if task is not None else 0
            run_job(self, stage, job_id, final_attempt=retries_left == 0)

        body.__name__ = f"{stage.value}_task"
        return body

    def enqueue(self, stage: Stage, job_id: int) -> None:
        """Put a job's task on its queue."""
        self.tasks[stage](job_id)


def run_job(queues: Queues, stage: Stage, job_id: int, *, final_attempt: bool = True) -> None:
    """Claim the job, run its stage, record the outcome, and queue the follow-up stage."""
    warehouse = queues.warehouse
    with warehouse.transaction() as session:
        if not job_store.claim_job(session, job_id):
            log.info("job %s is not queued any more; skipping", job_id)
            return
        job = job_store.get_job(session, job_id)
    attempt = job.attempts
    beat = _heartbeat(warehouse, job_id, attempt)
    run = StageRun(job.city, job.options, beat, attempt_fence(job_id, attempt), queues.stop)
    stop_beating = _keep_beating(beat, queues.settings.sightscan_job_stale_seconds / 4)
    try:
        result = stage_function(stage)(warehouse, run)
    except StageInterrupted:
        if _end(queues, job_id, attempt, reason=REQUEUED_REASON, final=False):
            queues.enqueue(stage, job_id)  # the next worker takes it (this one is stopping)
        log.info("job %s (%s %s) queued again: the worker is stopping", job_id, stage, job.city)
        return
    except StaleAttemptError as exc:
        log.warning("job %s: %s", job_id, exc)
        return
    except TRANSIENT as exc:
        reason = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        _end(queues, job_id, attempt, reason=reason, final=final_attempt)
        if final_attempt:
            return
        raise  # Huey retries with backoff
    except SightScanError as exc:
        _end(queues, job_id, attempt, reason=str(exc).splitlines()[0] or type(exc).__name__)
        return
    except Exception as exc:  # a bug: record it, keep the worker alive
        log.exception("job %s (%s %s) crashed", job_id, stage, job.city)
        _end(queues, job_id, attempt, reason=f"internal error: {exc.__class__.__name__}")
        return
    finally:
        stop_beating()
    with warehouse.transaction() as session:
        finished = job_store.finish_job(session, job_id, counts=result.counts, attempt=attempt)
    if not finished:  # queued again meanwhile (missed heartbeats): the newer attempt decides
        log.warning("job %s was taken over by a newer attempt; not queueing a follow-up", job_id)
        return
    if result.follow_up is not None:
        submit_follow_up(queues, job.city, result.follow_up)


def _end(queues: Queues, job_id: int, attempt: int, *, reason: str, final: bool = True) -> bool:
    """Fail the job (or queue it again) if this attempt still runs it; whether it did."""
    with queues.warehouse.transaction() as session:
        ended = job_store.fail_job(session, job_id, reason=reason, final=final, attempt=attempt)
    if not ended:
        log.warning("job %s attempt %s is no longer current; not ending it", job_id, attempt)
    return ended


def submit_follow_up(queues: Queues, city: str, follow_up: FollowUp) -> int | None:
    """Queue the stage after a finished one (labelling at the remote ILS when one is set)."""
    local = HueyScheduler(queues)
    if follow_up.stage is not Stage.LABEL:
        return local.submit(follow_up.stage, city, **follow_up.options)
    with labelling_scheduler(queues.settings, local) as scheduler:
        return scheduler.submit(follow_up.stage, city, **follow_up.options)


def _heartbeat(warehouse: Warehouse, job_id: int, attempt: int) -> Heartbeat:
    def beat(counts: dict[str, Any] | None = None) -> None:
        with warehouse.transaction() as session:
            job_store.heartbeat(session, job_id, counts=counts, attempt=attempt)

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
        cls, settings: Settings | None = None, warehouse: Warehouse | None = None
    ) -> HueyScheduler:
        """Open the queues the settings point at."""
        settings = settings or get_settings()
        warehouse = warehouse or Warehouse.from_settings(settings)
        return cls(Queues.create(settings, warehouse))

    def submit(self, stage: Stage, city: str, **options: Any) -> int | None:
        """Queue `stage` for `city`; the job id, or None when it cannot be queued now."""
        stage = Stage.parse(stage)
        with self.queues.warehouse.transaction() as session:
            job_id = record_job(session, stage=stage, city=city, options=options)
        if job_id is not None:
            self.queues.enqueue(stage, job_id)
        return job_id

    def requeue_lost_jobs(self, *, stale_after_seconds: int) -> list[int]:
        """Queue again the jobs whose worker died (no heartbeat) or whose message was lost."""
        older_than = utcnow() - timedelta(seconds=stale_after_seconds)
        with self.queues.warehouse.transaction() as session:
            stale = job_store.requeue_stale_jobs(session, older_than=older_than)
            waiting = job_store.queued_jobs(session, older_than=older_than)
        queued_ids = _ids_in_queues(self.queues)
        requeued: list[int] = []
        for job in waiting:
            if job.id in queued_ids:
                continue
            try:
                stage = Stage.parse(job.stage)
            except InvalidInputError:  # a row no version of SightScan queues: leave it alone
                log.warning("job %s has an unknown stage %r; not queueing it", job.id, job.stage)
                continue
            self.queues.enqueue(stage, job.id)
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


__all__ = ["HueyScheduler", "Queues", "make_huey", "run_job", "stage_function"]
