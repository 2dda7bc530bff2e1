"""The training stage (MTS): from a city's data mart to a published model version.

assemble (clean names, drop sparse classes, split) -> train -> evaluate on the validation
split -> re-evaluate the current model on the same photos -> publish version v+1 only if
the new one is not worse. Publishing is one transaction after everything else, so a run
killed at any point publishes nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sightscan.detections import Box, Label
from sightscan.errors import ModelFormatError
from sightscan.pipeline import Fence, StageResult, StageRun
from sightscan.progress import show_progress
from sightscan.training.backends import BackendConfig, select_trainer
from sightscan.training.credits import photo_credits, photos_per_class
from sightscan.training.dataset import LANDMARK_KEY, TrainingImage, assemble_training_set
from sightscan.training.evaluation import Metrics, evaluate, is_not_worse
from sightscan.training.export import read_metadata, set_metadata
from sightscan.training.negatives import EVERYDAY_KEY, background_crops, folder_negatives
from sightscan.training.quantize import ServedModel, choose_served_model
from sightscan.training.rejection import MAX_LANDMARKS
from sightscan.training.trainer import TrainConfig, TrainProgress, console_progress
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city
from sightscan.warehouse.everyday import everyday_negatives, landmark_photos
from sightscan.warehouse.marts import negative_images, refresh_marts, training_images
from sightscan.warehouse.models import MartTrainingImage
from sightscan.warehouse.registry import warehouse_detector
from sightscan.warehouse.versions import add_model_version, latest_model_version

log = logging.getLogger(__name__)
NEGATIVES_PER_POSITIVE = 0.5
CROPS_PER_POSITIVE = 0.25  # background crops fill up to this many negatives per photo
EVERYDAY_PER_POSITIVE = 0.25  # everyday scenes (pool, SIGHTSCAN_NEGATIVES_DIR), on top
VAL_FRACTION = 0.15  # as benchmarks/detector.py, whose numbers the README reports
DECODE_SIZE = 320


@dataclass
class TrainResult:
    """What a training run did: its metrics, the current model's, and whether it published."""

    city: str
    published: bool
    version: int | None
    metrics: Metrics
    previous_metrics: Metrics | None
    counts: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def summary(self) -> str:
        """One line for people."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        if self.published:
            return f"{self.city}: published version {self.version} ({counts})"
        return f"{self.city}: nothing published: {self.reason} ({counts})"

    def as_counts(self) -> dict[str, Any]:
        """JSON-ready counts for the job record."""
        return {
            **self.counts,
            "published": self.published,
            "version": self.version,
            "map50": round(self.metrics.map50, 4),
            "map50_95": round(self.metrics.map50_95, 4),
            "top1_accuracy": round(self.metrics.top1_accuracy, 4),  # the measure without boxes
            "reason": self.reason or None,
        }


PhaseCallback = Callable[[str, int, int], None]
"""(phase in words, done, total): a step of a training run outside the epochs."""


def _no_phase(_phase: str, _done: int, _total: int) -> None:
    return None


def _as_training_image(
    row: MartTrainingImage, load: Callable[[str], bytes], *, negative: bool = False
) -> TrainingImage:
    labels = (
        []
        if negative
        else [
            Label(label["name"], Box(*label["box"]) if label.get("box") else None)
            for label in row.labels
        ]
    )
    return TrainingImage(key=str(row.image_id), load=partial(load, row.blob_key), labels=labels)


def load_training_images(warehouse: Warehouse, city_id: int) -> list[TrainingImage]:
    """The city's labelled photos plus negatives: other cities' photos, else background
    crops, and everyday scenes (the warehouse's everyday pool, SIGHTSCAN_NEGATIVES_DIR);
    and the pool's landmark photos, which only the open-set gate takes (LANDMARK_KEY)."""
    settings = warehouse.settings
    everyday_dir = settings.sightscan_negatives_dir
    with warehouse.transaction() as session:
        rows = training_images(session, city_id=city_id)
        limit = int(len(rows) * NEGATIVES_PER_POSITIVE)
        negatives = negative_images(session, city_id=city_id, limit=limit) if limit else []
        # Everyday scenes: "no sight" for every city, alone or not. One share for both
        # sources; with an operator's folder too, the pool gives half of it.
        everyday_wanted = int(len(rows) * EVERYDAY_PER_POSITIVE)
        pool_share = everyday_wanted - everyday_wanted // 2 if everyday_dir else everyday_wanted
        pool = everyday_negatives(session, limit=pool_share,
                                  landmark_categories=settings.landmark_categories)
        landmarks = landmark_photos(session, limit=MAX_LANDMARKS,
                                    categories=settings.landmark_categories)
    load = warehouse.blobs.get
    positives = [_as_training_image(r, load) for r in rows]
    images = positives + [_as_training_image(r, load, negative=True) for r in negatives]
    crops_wanted = int(len(rows) * CROPS_PER_POSITIVE) - len(negatives)
    if crops_wanted > 0:
        images += background_crops(positives, crops_wanted)
    images += [TrainingImage(f"{EVERYDAY_KEY}pool/{p.image_id}", partial(load, p.blob_key), [])
               for p in pool]
    if everyday_dir is not None:
        images += folder_negatives(everyday_dir, everyday_wanted - len(pool))
    images += [TrainingImage(f"{LANDMARK_KEY}pool/{p.image_id}", partial(load, p.blob_key), [])
               for p in landmarks]
    return images


def train_config(warehouse: Warehouse) -> TrainConfig:
    """The training configuration from the settings (MTS_EPOCHS, IS_MTS_GPU_ENABLED)."""
    settings = warehouse.settings
    return TrainConfig(
        epochs=settings.mts_epochs,
        device="cuda" if settings.is_mts_gpu_enabled else "cpu",
        threads=max(1, os.cpu_count() or 1),
    )


def train_city(
    warehouse: Warehouse,
    city: str,
    *,
    progress: bool = False,
    on_progress: Callable[[TrainProgress], None] | None = None,
    on_phase: PhaseCallback | None = None,
    fence: Fence | None = None,
) -> TrainResult:
    """Train a city's next model and publish it when it is not worse than the current one.

    `on_phase(phase, done, total)` reports the steps before and after the epochs (loading
    and decoding photos, evaluating), so progress shows from the first second. `fence` (a
    queued job's attempt) is checked in the publishing transaction: an attempt that lost
    its job to a newer one publishes nothing.
    """
    settings = warehouse.settings
    phase = on_phase or _no_phase
    phase("loading photos", 0, 0)
    with warehouse.transaction() as session:
        refresh_marts(session)
        city_row = find_city(session, city)
        city_name, city_id = city_row.name, city_row.id
    train = select_trainer(BackendConfig.from_settings(settings))  # fails before loading photos
    started = time.monotonic()
    images = load_training_images(warehouse, city_id)
    training_set = assemble_training_set(
        images,
        city=city_name,
        min_images_per_label=settings.min_image_number_per_label,
        val_fraction=VAL_FRACTION,
        decode_size=DECODE_SIZE,
        on_decoded=lambda done, total: phase("decoding photos", done, total),
    )
    config = train_config(warehouse)
    phase("training", 0, config.epochs)
    if on_progress is None and show_progress(progress):
        with console_progress(f"training {city_name}") as bar:
            trained = train(training_set, config, bar, city=city_name)
    else:
        trained = train(training_set, config, on_progress, city=city_name)
    counts: dict[str, Any] = {
        "classes": len(training_set.class_names),
        "train_images": len(training_set.train),
        "val_images": len(training_set.val),
        "dropped_classes": len(training_set.dropped_classes),
        "corrupt_images": len(training_set.corrupt_images),
        "everyday_negatives": sum(  # everyday scenes among the negatives: pool and folder
            sample.key.startswith(EVERYDAY_KEY) for sample in (*training_set.train,
                                                                *training_set.val)
        ),
        "landmark_photos": len(training_set.landmarks),  # the gate's negatives only
        "seconds": round(time.monotonic() - started, 1),
    }
    phase("checking the int8 model", 0, 0)
    served = _served_model(trained.onnx, trained.metrics, training_set,
                           settings.sightscan_int8_tolerance)
    counts["model_precision"] = served.precision
    phase("comparing with the current model", 0, 0)
    previous = _evaluate_current(warehouse, city_name, training_set)
    tolerance = settings.sightscan_quality_tolerance
    if previous is not None and not is_not_worse(served.metrics, previous, tolerance):
        reason = (
            f"new mAP@0.5:0.95 {served.metrics.map50_95:.3f} is worse than the current "
            f"model's {previous.map50_95:.3f} on the same validation photos"
        )
        return TrainResult(city_name, False, None, served.metrics, previous, counts, reason)
    labelled = sum(1 for image in images if image.labels)
    with warehouse.transaction() as session:
        if fence is not None:
            fence(session)  # before the report blob: a stale attempt writes nothing
        latest = latest_model_version(session, city_id=city_id)
        version = (latest.version if latest else 0) + 1
        report_key = warehouse.blobs.put(trained.report_png) if trained.report_png else None
        quantization = dict(served.record)
        if served.precision != "float32":  # keep the float model too: nothing trained is lost
            quantization["float_blob"] = warehouse.blobs.put(trained.onnx)
        metadata = {
            **trained.metadata,
            # the served model's own gate (an int8 model's is rebuilt on its features)
            "rejection": read_metadata(served.onnx).get("rejection"),
            "version": version,
            "city": city_name,
            "report_blob": report_key,
            "training": {**trained.metadata.get("training", {}), **counts},
            "sights": photo_credits(session, photos_per_class(training_set)),  # for clients
            "metrics": served.metrics.as_dict(),
            "precision": served.precision,
            "quantization": quantization,
        }
        published = add_model_version(
            session,
            warehouse.blobs,
            city=city_name,
            model_bytes=set_metadata(served.onnx, metadata),
            metadata=metadata,
            metrics=served.metrics.as_dict(),
            labelled_images=labelled,
            fence=fence,
        )
        refresh_marts(session)
    return TrainResult(city_name, True, published.version, served.metrics, previous, counts)


def _served_model(float_model: bytes, float_metrics: Metrics, training_set: Any,
                  tolerance: float) -> ServedModel:
    """The model clients get: int8 when it holds up on the validation photos, else float."""
    if tolerance < 0:
        reason = "int8 models are off (SIGHTSCAN_INT8_TOLERANCE < 0)"
        record = {"served": "float32", "reason": reason, "float_bytes": len(float_model)}
        return ServedModel(float_model, "float32", float_metrics, reason, record)
    return choose_served_model(
        float_model, float_metrics,
        calibration=[sample.pixels for sample in training_set.train],
        val_images=training_set.val_images(),
        class_names=training_set.class_names,
        tolerance=tolerance,
        gate_set=training_set,
    )


def _evaluate_current(warehouse: Warehouse, city: str, training_set: Any) -> Metrics | None:
    """The current model's metrics on the new model's validation photos (None when no model)."""
    if not training_set.val:
        return None
    try:
        detector = warehouse_detector(warehouse, city)
    except ModelFormatError:
        log.warning("the current model of %s cannot be loaded; treating it as absent", city)
        return None
    if detector is None:
        return None
    return evaluate(
        detector, [sample.source for sample in training_set.val], training_set.class_names
    )


def run_train_stage(warehouse: Warehouse, run: StageRun) -> StageResult:
    """The queue task's body: train with progress reported as the job's counts.

    The stop flag is checked at every training step, so a stopping worker ends within
    seconds (its job is queued again); publishing goes through the attempt's fence.
    """
    last_time, last_phase = 0.0, ""

    def report(counts: dict[str, Any], phase: str, *, force: bool = False) -> None:
        nonlocal last_time, last_phase
        run.check_stop()
        # A new phase and an epoch's end show at once; other progress at most once a second.
        if force or phase != last_phase or time.monotonic() - last_time >= 1:
            last_time, last_phase = time.monotonic(), phase
            run.beat({"phase": phase, **counts})

    def epoch(event: TrainProgress) -> None:
        counts = {"epoch": event.epoch, "epochs": event.epochs, "loss": round(event.loss, 4)}
        report(counts, "training", force=event.step == event.steps)

    def step(phase: str, done: int, total: int) -> None:
        report({"done": done, "total": total} if total else {}, phase)

    result = train_city(warehouse, run.city, on_progress=epoch, on_phase=step, fence=run.fence)
    return StageResult(result.as_counts())
