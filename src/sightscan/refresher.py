"""Data mart refresher (DMR): refresh marts, decide which city to label and which to train.

Stages queue their follow-up themselves the moment they finish; this periodic pass is the
reconciliation that catches whatever an event missed (a lost message, a dead worker). A
pass is a list of steps, each with its own interval; a deployment can add its own step
(e.g. starting a GPU machine when training is queued) with `Refresher.add_step`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from sightscan.config import Settings
from sightscan.labelling.remote import labelling_scheduler
from sightscan.pipeline import JobQueue, Scheduler, Stage, ready_to_label, ready_to_train
from sightscan.warehouse import Warehouse
from sightscan.warehouse.marts import current_model, refresh_marts

log = logging.getLogger(__name__)
QUIET_GPU_OUTCOMES = ("nothing to do", "running", "booting", "waiting")

StepResult = dict[str, Any]
Step = Callable[["Refresher"], StepResult]
"""One duty of a pass: does its work and returns what it did (keys of the pass's summary)."""


@dataclass(frozen=True, slots=True)
class PassStep:
    """A refresher duty and how often it runs (seconds, read from the settings each pass)."""

    name: str
    every: Callable[[Settings], int]
    run: Step


def refresh_step(refresher: Refresher) -> StepResult:
    """Bring the marts up to date, recover lost jobs and remove stale temporary blobs."""
    s, warehouse = refresher.settings, refresher.warehouse
    with warehouse.transaction() as session:
        changes = refresh_marts(session).changes
    requeued = refresher.scheduler.requeue_lost_jobs(
        stale_after_seconds=s.sightscan_job_stale_seconds
    )
    warehouse.blobs.remove_stale_temporaries(s.sightscan_blob_tmp_grace_seconds)
    return {"refreshed_changes": changes, "requeued_jobs": requeued}


def label_step(refresher: Refresher) -> StepResult:
    """Queue labelling for the city that needs it most (whose crawl has finished)."""
    with refresher.warehouse.transaction() as session:
        city = ready_to_label(session)
        if city is None:
            return {}
        mode = "existing" if current_model(session, city) else "new"
    return {"label": (city, refresher.labelling.submit(Stage.LABEL, city, mode=mode))}


def train_step(refresher: Refresher) -> StepResult:
    """Queue training for every city that is ready (see sightscan.pipeline.ready_to_train)."""
    with refresher.warehouse.transaction() as session:
        cities = ready_to_train(session, refresher.settings)
    if not cities:
        return {}
    return {"train": [(city, refresher.scheduler.submit(Stage.TRAIN, city)) for city in cities]}


def gpu_step(refresher: Refresher) -> StepResult:
    """Start the training instance when training waits and no training worker beats, stop it
    when it overruns its guards (sightscan.cloud); only actions are reported."""
    gpu = refresher.gpu_manager()
    if gpu is None:
        return {}
    outcome: str = gpu.reconcile()
    return {} if outcome.startswith(QUIET_GPU_OUTCOMES) else {"gpu": outcome}


def default_steps() -> list[PassStep]:
    """The seed's three duties, each on its own interval."""
    return [
        PassStep("refresh", lambda s: s.data_mart_refresh_data_marts_every_seconds, refresh_step),
        # Training before labelling: a city whose labelling is queued again in every pass
        # (photos nobody can label) would otherwise never be free to train.
        PassStep("train", lambda s: s.data_mart_enable_model_training_every_seconds, train_step),
        PassStep(
            "label", lambda s: s.data_mart_enable_labelling_requests_every_seconds, label_step
        ),
        PassStep("gpu", lambda s: s.sightscan_gpu_check_seconds, gpu_step),
    ]


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
    gpu = done.get("gpu")
    if gpu:
        parts.append(f"GPU training instance: {gpu}")
    return "; ".join(parts) or "nothing to do"


@dataclass
class Refresher:
    """Runs the pass steps on their own intervals.

    `labelling` is where label work goes (a remote ILS, see ILS_PUBLIC_ENDPOINT_URL); it is
    opened once and closed by `close()`.
    """

    settings: Settings
    warehouse: Warehouse
    scheduler: JobQueue
    steps: list[PassStep] = field(default_factory=default_steps)
    _last: dict[str, float] = field(default_factory=dict, init=False)
    _resources: ExitStack = field(default_factory=ExitStack, init=False)
    _labelling: Scheduler | None = field(default=None, init=False)
    gpu: Any = None  # sightscan.cloud.GpuOnDemand; made on first use when configured

    @property
    def labelling(self) -> Scheduler:
        """The scheduler for the label stage (opened on first use)."""
        if self._labelling is None:
            self._labelling = self._resources.enter_context(
                labelling_scheduler(self.settings, self.scheduler)
            )
        return self._labelling

    def add_step(self, step: PassStep) -> None:
        """Run one more duty in every pass, after the others."""
        self.steps.append(step)

    def due(self, duty: str, every: int, now: float) -> bool:
        """Whether `duty` has not run for `every` seconds (always due the first time)."""
        if now - self._last.get(duty, float("-inf")) < every:
            return False
        self._last[duty] = now
        return True

    def run_once(self, now: float | None = None) -> dict[str, object]:
        """One pass: each step runs if its interval has passed; returns what was done."""
        now = time.monotonic() if now is None else now
        done: dict[str, object] = {}
        for step in self.steps:
            if self.due(step.name, step.every(self.settings), now):
                done.update(step.run(self))
        return done

    def close(self) -> None:
        """Close what the refresher opened (the remote labelling client)."""
        self._resources.close()
        self._labelling = None

    def gpu_manager(self) -> Any:
        """The GPU instance manager when IS_MTS_GPU_ENABLED and MTS_EC2_INSTANCE_ID are set."""
        from sightscan.cloud import GpuOnDemand, gpu_on_demand_enabled

        if self.gpu is None and gpu_on_demand_enabled(self.settings):
            self.gpu = GpuOnDemand.from_settings(self.settings, self.warehouse)
        return self.gpu

    def run_forever(self, stop: threading.Event, tick_seconds: float = 1.0) -> None:
        """Run passes until `stop` is set; a failing pass is logged and retried next tick."""
        log.info("refresher started")
        try:
            while not stop.is_set():
                try:
                    done = self.run_once()
                    if any(done.values()):
                        log.info("refresher: %s", describe_pass(done))
                except Exception:
                    log.exception("refresher pass failed; retrying")
                stop.wait(tick_seconds)
        finally:
            self.close()
        log.info("refresher stopped")
