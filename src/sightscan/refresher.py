"""Data mart refresher (DMR): refresh marts, decide which city to label and which to train.

Stages queue their follow-up themselves the moment they finish; this periodic pass is the
reconciliation that catches whatever an event missed (a lost message, a dead worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from sightscan.config import Settings
from sightscan.labelling.remote import labelling_scheduler
from sightscan.pipeline import Scheduler
from sightscan.warehouse import Warehouse
from sightscan.warehouse.marts import CityOverview, city_overview, current_model, refresh_marts
from sightscan.warehouse.versions import latest_model_version

log = logging.getLogger(__name__)


def city_to_label(overview: list[CityOverview]) -> str | None:
    """A city without any label first (oldest first); else the one with most unlabelled photos."""
    unlabelled = [c for c in overview if c.images > c.labelled_images]
    never = sorted((c for c in unlabelled if c.labels == 0), key=lambda c: (c.created_at, c.city))
    if never:
        return never[0].city
    if not unlabelled:
        return None
    return max(unlabelled, key=lambda c: (c.images - c.labelled_images, c.city)).city


def needs_training(session: Session, city: CityOverview, settings: Settings) -> bool:
    """Enough labelled photos and no model, or enough new labelled photos since the newest model."""
    if city.labelled_images <= settings.min_labelled_images_needed_for_training:
        return False
    latest = latest_model_version(session, city_id=city.city_id)
    if latest is None:
        return True
    new_labels = city.labelled_images - latest.labelled_images
    return new_labels >= settings.sightscan_new_labels_for_retraining


def cities_to_train(session: Session, settings: Settings) -> list[str]:
    """Every city that needs a (new) model now."""
    return [c.city for c in city_overview(session) if needs_training(session, c, settings)]


def _queued(what: str, city: str, job_id: object) -> str:
    if job_id is None:
        return f"{what} of {city} is already queued or running"
    return f"{what} of {city} queued as job {job_id}"


def describe_pass(done: Mapping[str, object]) -> str:
    """What one pass did, in words for the log (the keys of `Refresher.run_once`)."""
    parts: list[str] = []
    changes = done.get("refreshed_changes")
    if changes:
        parts.append(f"data marts refreshed with {changes} new arrival(s)")
    requeued = done.get("requeued_jobs")
    if isinstance(requeued, Sequence) and requeued:
        ids = ", ".join(str(job_id) for job_id in requeued)
        parts.append(f"job(s) {ids} queued again (worker stopped or message lost)")
    label = done.get("label")
    if isinstance(label, tuple) and len(label) == 2:
        parts.append(_queued("labelling", str(label[0]), label[1]))
    train = done.get("train")
    if isinstance(train, Sequence):
        parts.extend(
            _queued("training", str(city), job_id) + " (enough labelled photos)"
            for city, job_id in train
        )
    return "; ".join(parts) or "nothing to do"


@dataclass
class Refresher:
    """Runs the three periodic duties on their own intervals."""

    settings: Settings
    warehouse: Warehouse
    scheduler: Scheduler
    _last: dict[str, float] | None = None

    def due(self, duty: str, every: int, now: float) -> bool:
        """Whether `duty` has not run for `every` seconds (always due the first time)."""
        last = self._last if self._last is not None else {}
        self._last = last
        if now - last.get(duty, float("-inf")) < every:
            return False
        last[duty] = now
        return True

    def run_once(self, now: float | None = None) -> dict[str, object]:
        """One pass: each duty runs if its interval has passed; returns what was done."""
        now = time.monotonic() if now is None else now
        s = self.settings
        done: dict[str, object] = {}
        if self.due("refresh", s.data_mart_refresh_data_marts_every_seconds, now):
            with self.warehouse.transaction() as session:
                done["refreshed_changes"] = refresh_marts(session).changes
            requeue = getattr(self.scheduler, "requeue_lost_jobs", None)
            if requeue is not None:
                done["requeued_jobs"] = requeue(stale_after_seconds=s.sightscan_job_stale_seconds)
        if self.due("label", s.data_mart_enable_labelling_requests_every_seconds, now):
            with self.warehouse.transaction() as session:
                city = city_to_label(city_overview(session))
            if city is not None:
                ils = labelling_scheduler(s, self.scheduler)
                with self.warehouse.transaction() as session:
                    mode = "existing" if current_model(session, city) else "new"
                done["label"] = (city, ils.submit("label", city, mode=mode))
        if self.due("train", s.data_mart_enable_model_training_every_seconds, now):
            with self.warehouse.transaction() as session:
                cities = cities_to_train(session, s)
            done["train"] = [(city, self.scheduler.submit("train", city)) for city in cities]
        return done

    def run_forever(self, stop: threading.Event, tick_seconds: float = 1.0) -> None:
        """Run passes until `stop` is set; a failing pass is logged and retried next tick."""
        log.info("refresher started")
        while not stop.is_set():
            try:
                done = self.run_once()
                if any(done.values()):
                    log.info("refresher: %s", describe_pass(done))
            except Exception:
                log.exception("refresher pass failed; retrying")
            stop.wait(tick_seconds)
        log.info("refresher stopped")
