"""Import a photo set from disk (one folder per sight, or YOLO) into the warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sightscan.cities import normalise_city
from sightscan.datasets import DatasetItem, LabelProblem, read_dataset
from sightscan.errors import InvalidImageError
from sightscan.images import ImageInfo, inspect_image
from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import NewImage, add_images
from sightscan.warehouse.marts import refresh_marts

BATCH = 100


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did."""

    city: str
    added: int
    duplicates: int
    skipped: int
    labels: int
    label_problems: tuple[LabelProblem, ...] = ()  # skipped label lines (file, line, reason)


def _to_new_image(item: DatasetItem, data: bytes, city: str, info: ImageInfo) -> NewImage:
    return NewImage(
        data=data,
        city=city,
        sight=item.sight,
        source_url=item.path.resolve().as_uri(),
        origin="import",
        labels=tuple(item.labels),
        label_source="import",
        info=info,
    )


def import_dataset(
    warehouse: Warehouse, path: Path, *, city: str, fmt: str = "folders", progress: bool = False
) -> ImportReport:
    """Add every valid photo of a dataset folder; invalid files are skipped and counted."""
    city = normalise_city(city)
    items = list(read_dataset(Path(path), fmt))
    max_pixels = warehouse.settings.sightscan_max_image_pixels
    added = duplicates = skipped = labels = 0
    with Progress(
        TextColumn("importing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task(city, total=len(items))
        for start in range(0, len(items), BATCH):
            batch: list[NewImage] = []
            for item in items[start : start + BATCH]:
                data = item.path.read_bytes()
                try:
                    info = inspect_image(data, max_pixels=max_pixels)
                except InvalidImageError:
                    skipped += 1
                    continue
                batch.append(_to_new_image(item, data, city, info))
            with warehouse.transaction() as session:
                results = add_images(session, warehouse.blobs, batch, max_pixels=max_pixels)
            for new, result in zip(batch, results, strict=True):
                added += result.created
                duplicates += not result.created
                labels += len(new.labels) if result.created else 0
            bar.advance(task, min(BATCH, len(items) - start))
    with warehouse.transaction() as session:
        refresh_marts(session)
    problems = tuple(problem for item in items for problem in item.problems)
    return ImportReport(city, added, duplicates, skipped, labels, problems)
