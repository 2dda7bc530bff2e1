"""The labelling stage: label a city's unlabelled photos, within the paid-call cap.

Each photo's labels are written in their own transaction with its log line, so a worker
killed mid-way leaves whole labels only, and a re-run continues with the photos left.
Vision calls are reserved in the warehouse before they are made; once the city's cap is
reached (or Vision sees no landmark), the photo gets the weak label of the sight it was
collected for. Photos nobody can label are logged and not tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sightscan.detections import Label
from sightscan.errors import InvalidImageError, NotFoundError, QuotaExceededError
from sightscan.labelling.base import Labeller, LabellingItem
from sightscan.labelling.factory import LabellerConfig, make_labeller
from sightscan.labelling.weak import WeakLabeller
from sightscan.pipeline import FollowUp, Stage, StageResult, StageRun, needs_training
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city, reserve_vision_call
from sightscan.warehouse.images import StoredImage, set_labels, unlabelled_images
from sightscan.warehouse.jobs import log_labelling
from sightscan.warehouse.marts import city_overview, refresh_marts
from sightscan.warehouse.registry import warehouse_detector

log = logging.getLogger(__name__)
BATCH = 50


def _reserve(warehouse: Warehouse, city_id: int) -> Callable[[], bool]:
    cap = warehouse.settings.max_google_vision_calls_per_new_city

    def reserve() -> bool:
        with warehouse.transaction() as session:  # committed before the call is made
            return reserve_vision_call(session, city_id=city_id, cap=cap)

    return reserve


def make_city_labeller(
    warehouse: Warehouse, city: str, city_id: int
) -> tuple[Labeller, WeakLabeller]:
    """The configured labeller for a city and the weak fallback (both with the current model)."""
    config = LabellerConfig.from_settings(warehouse.settings)
    detector = warehouse_detector(warehouse, city)  # boxes for the weak labels, if any
    weak = WeakLabeller(detector.detect if detector is not None else None)
    if config.name == "weak":
        return weak, weak
    return make_labeller(config, reserve_call=_reserve(warehouse, city_id)), weak


def label_image(
    warehouse: Warehouse,
    image: StoredImage,
    city: str,
    labeller: Labeller,
    weak: WeakLabeller,
    name: str,
) -> tuple[str, list[Label]]:
    """Label one stored photo; returns (outcome, labels) where outcome names who labelled it."""
    item = LabellingItem(
        warehouse.blobs.get(image.blob_key), image.width, image.height, image.sight, city
    )
    outcome = name
    try:
        labels = labeller.label(item)
    except QuotaExceededError:
        labels, outcome = [], "capped"
    except InvalidImageError:
        labels, outcome = [], "rejected"
    if not labels and labeller is not weak:
        labels = weak.label(item)
        outcome = f"{outcome}+weak" if labels else outcome
    return (outcome if labels else "unlabellable"), labels


def run_label_stage(warehouse: Warehouse, run: StageRun) -> StageResult:
    """Label every unlabelled photo of `city`; training follows when the city is ready.

    Each photo's labels are stored in a transaction that first checks the job attempt's
    fence, so a worker that lost its job to a newer attempt stores nothing more.
    """
    settings = warehouse.settings
    city = run.city
    with warehouse.transaction() as session:
        city_id = find_city(session, city).id
    labeller, weak = make_city_labeller(warehouse, city, city_id)
    source = "vision" if settings.sightscan_labeller == "vision" else "weak"
    counts: dict[str, int] = {}
    while True:
        with warehouse.transaction() as session:
            batch = unlabelled_images(session, city_id=city_id, limit=BATCH)
        if not batch:
            break
        for image in batch:
            run.check_stop()
            outcome, labels = label_image(warehouse, image, city, labeller, weak, source)
            with warehouse.transaction() as session:
                run.fence(session)
                if labels:
                    set_labels(
                        session,
                        image_id=image.image_id,
                        labels=labels,
                        source="weak" if outcome.endswith("weak") else source,
                    )
                log_labelling(
                    session,
                    city_id=city_id,
                    image_id=image.image_id,
                    labeller=source,
                    outcome=outcome,
                    detail=", ".join(label.name for label in labels),
                )
            counts[outcome] = counts.get(outcome, 0) + 1
        run.beat(dict(counts))
    if not counts and run.options.get("mode") == "existing":
        raise NotFoundError(f"{city} has no unlabelled photos")
    with warehouse.transaction() as session:
        refresh_marts(session)
        ready = any(
            c.city_id == city_id and needs_training(session, c, settings)
            for c in city_overview(session)
        )
    return StageResult(dict(counts), FollowUp(Stage.TRAIN) if ready else None)
