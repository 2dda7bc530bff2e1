"""The pipeline of one city: its stages, their order, what a stage returns, and when it may run.

crawl -> label -> train. A stage function gets a `StageRun` (its city, options, heartbeat,
stop flag and the fence of its job attempt) and returns a `StageResult` with its counts and
its follow-up stage. The readiness rules ("ready to label", "ready to train") and the order
rule (a stage is queued only when no earlier stage of the city is queued or running) live
here, and the queue (`sightscan.tasks`), the refresher and the API all go through them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.orm import Session

from sightscan.config import Settings
from sightscan.errors import InvalidInputError, StageInterrupted, StaleAttemptError
from sightscan.warehouse import Warehouse
from sightscan.warehouse import jobs as job_store
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.marts import CityOverview, city_overview
from sightscan.warehouse.versions import latest_model_version


class Stage(StrEnum):
    """A pipeline stage; the order of the members is the order of the pipeline."""

    CRAWL = "crawl"
    LABEL = "label"
    TRAIN = "train"

    @classmethod
    def parse(cls, value: str) -> Stage:
        """The stage named `value`; InvalidInputError for anything else."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(stage.value for stage in cls)
            raise InvalidInputError(f"expected a stage in {names}, got {value!r}") from None

    @property
    def earlier(self) -> tuple[Stage, ...]:
        """The stages that must have finished for a city before this one may run."""
        order = list(Stage)
        return tuple(order[: order.index(self)])


Heartbeat = Callable[[dict[str, Any] | None], None]
"""Called by a running stage to show it is alive, optionally with its progress counts."""

Fence = Callable[[Session], None]
"""Checks, inside the caller's transaction, that this job attempt is still the current one."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The stage to queue for the same city once a stage has finished."""

    stage: Stage
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StageResult:
    """What a stage did (its counts, stored with its job) and what should run after it."""

    counts: dict[str, Any]
    follow_up: FollowUp | None = None


def _no_fence(_session: Session) -> None:
    return None


def _no_beat(_counts: dict[str, Any] | None = None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class StageRun:
    """One run of a stage for a city, as the queue hands it to the stage function."""

    city: str
    options: dict[str, Any] = field(default_factory=dict)
    beat: Heartbeat = _no_beat
    fence: Fence = _no_fence
    stop: threading.Event = field(default_factory=threading.Event)

    def check_stop(self) -> None:
        """Raise StageInterrupted when the worker was told to stop (its job is queued again)."""
        if self.stop.is_set():
            raise StageInterrupted(f"stopped while running for {self.city}")


def attempt_fence(job_id: int, attempt: int) -> Fence:
    """The fence of one job attempt: refuses once the job was queued again or finished.

    The check is a conditional UPDATE of the job row, so it also locks the row until the
    caller's transaction ends: a concurrent re-queue waits, then sees a fresh heartbeat.
    """

    def fence(session: Session) -> None:
        if not job_store.hold_attempt(session, job_id, attempt=attempt):
            raise StaleAttemptError(
                f"job {job_id} attempt {attempt} is no longer current; nothing written"
            )

    return fence


class Scheduler(Protocol):
    """Queues pipeline stages for cities."""

    def submit(self, stage: Stage, city: str, **options: Any) -> int | None:
        """Queue `stage` for `city`; the job id, or None when it cannot be queued now.

        None means a job of this city and stage is already queued or running, or an
        earlier stage of the city has not finished yet.
        """
        ...


class JobQueue(Scheduler, Protocol):
    """A Scheduler that also recovers the jobs of dead workers (what the refresher needs)."""

    def requeue_lost_jobs(self, *, stale_after_seconds: int) -> list[int]:
        """Queue again the jobs whose worker stopped beating or whose message was lost."""
        ...


# ---------------------------------------------------------------- order
def unfinished_earlier_stage(session: Session, *, city_id: int, stage: Stage) -> Stage | None:
    """An earlier stage of the city that is still queued or running, if any."""
    active = set(job_store.active_stages(session, city_id=city_id))
    return next((earlier for earlier in stage.earlier if earlier.value in active), None)


def record_job(
    session: Session, *, stage: Stage, city: str, options: dict[str, Any] | None = None
) -> int | None:
    """Record a queued job when the order allows it; its id, or None (see Scheduler.submit)."""
    city_id = get_or_create_city(session, city).id
    if unfinished_earlier_stage(session, city_id=city_id, stage=stage) is not None:
        return None
    return job_store.create_job(session, city_id=city_id, stage=stage.value, options=options)


# ---------------------------------------------------------------- readiness
def city_to_label(overview: list[CityOverview]) -> str | None:
    """A city without any label first (oldest first); else the one with most unlabelled photos."""
    unlabelled = [c for c in overview if c.images > c.labelled_images]
    never = sorted((c for c in unlabelled if c.labels == 0), key=lambda c: (c.created_at, c.city))
    if never:
        return never[0].city
    if not unlabelled:
        return None
    return max(unlabelled, key=lambda c: (c.images - c.labelled_images, c.city)).city


def _free_for(session: Session, city_id: int, stage: Stage) -> bool:
    """No job of `stage` or of an earlier stage is queued or running for the city."""
    active = set(job_store.active_stages(session, city_id=city_id))
    return not any(s.value in active for s in (*stage.earlier, stage))


def ready_to_label(session: Session) -> str | None:
    """The city to label next (see city_to_label), among those not crawling or labelling now."""
    overview = city_overview(session)
    return city_to_label([c for c in overview if _free_for(session, c.city_id, Stage.LABEL)])


def needs_training(session: Session, city: CityOverview, settings: Settings) -> bool:
    """Enough labelled photos and no model, or enough new labelled photos since the newest model."""
    if city.labelled_images <= settings.min_labelled_images_needed_for_training:
        return False
    latest = latest_model_version(session, city_id=city.city_id)
    if latest is None:
        return True
    new_labels = city.labelled_images - latest.labelled_images
    return new_labels >= settings.sightscan_new_labels_for_retraining


def ready_to_train(session: Session, settings: Settings) -> list[str]:
    """Every city that needs a (new) model, is not training now, and has no crawl or labelling
    queued or running."""
    return [
        c.city
        for c in city_overview(session)
        if _free_for(session, c.city_id, Stage.TRAIN) and needs_training(session, c, settings)
    ]


@dataclass(frozen=True, slots=True)
class CityRequestOutcome:
    """What a request for a city did: its key, distinct requests so far, the crawl job."""

    city: str
    requests: int
    crawl_started: bool
    job_id: int | None


def request_city_crawl(
    warehouse: Warehouse,
    scheduler: Scheduler,
    settings: Settings,
    *,
    city: str,
    force: bool = False,
    photo_folder: str | None = None,
    sights: list[str] | None = None,
    client_hash: str | None = None,
) -> CityRequestOutcome:
    """Count a request for a city and queue its crawl once enough distinct clients asked.

    The pipeline's entry for the API and the CLI alike. Public requests (`client_hash`) must
    name a city the gazetteer knows; `force` (operators) takes any name and crawls at once.
    """
    from sightscan.cities import normalise_city
    from sightscan.warehouse.cities import request_city, resolve_city

    with warehouse.transaction() as session:
        name = normalise_city(city) if force else resolve_city(session, city, known_only=True)
        result = request_city(
            session,
            city=name,
            force=force,
            threshold=settings.sightscan_city_request_threshold,
            photo_folder=photo_folder,
            sights=sights,
            client_hash=client_hash,
            max_cities_per_client=settings.sightscan_city_requests_per_client_per_day,
        )
    job_id = scheduler.submit(Stage.CRAWL, result.city) if result.crawl_started or force else None
    return CityRequestOutcome(
        result.city, result.count, result.crawl_started or job_id is not None, job_id
    )
