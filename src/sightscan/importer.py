"""Import a photo set from disk (one folder per sight, or YOLO) into the warehouse.

Photos are read and checked in a thread pool (decoding releases the GIL) one batch ahead
of the batch being written, and each batch lands with the warehouse's multi-row ingest, so
the import runs at the warehouse's batched rate. A photo that is not a usable image and a
label line that cannot be used are skipped, remembered with the reason, and summed up in
the report: one bad file never stops an import.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sightscan.cities import normalise_city
from sightscan.datasets import DatasetItem, LabelProblem, read_dataset
from sightscan.errors import InvalidImageError
from sightscan.images import ImageInfo, inspect_image, read_photo
from sightscan.progress import show_progress
from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import NewImage, add_images
from sightscan.warehouse.marts import refresh_marts

BATCH = 500  # photos per transaction: the warehouse benchmark's batched size


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A photo file that was not imported, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did, with every skipped file and label line."""

    city: str
    added: int
    duplicates: int
    labels: int
    skipped_files: tuple[SkippedFile, ...] = ()
    label_problems: tuple[LabelProblem, ...] = ()  # skipped label lines (file, line, reason)

    @property
    def skipped(self) -> int:
        """How many photo files were not imported."""
        return len(self.skipped_files)

    def reasons(self) -> list[tuple[str, int]]:
        """Skipped files and label lines counted by reason, most frequent first."""
        counts = Counter(f"file: {s.reason}" for s in self.skipped_files)
        counts.update(f"label line: {p.reason}" for p in self.label_problems)
        return counts.most_common()


@dataclass
class _Tally:
    added: int = 0
    duplicates: int = 0
    labels: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)


Checked = NewImage | SkippedFile


def _check(item: DatasetItem, city: str, max_pixels: int) -> Checked:
    """Read and decode one photo: a NewImage ready for the warehouse, or why it is skipped."""
    try:
        data = read_photo(item.path)
        info = inspect_image(data, max_pixels=max_pixels)
    except InvalidImageError as exc:
        reason = str(exc).removeprefix(f"{item.path}: ")
        return SkippedFile(item.path, reason)
    return _to_new_image(item, data, city, info)


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


def _checked_batches(
    items: Sequence[DatasetItem], check: Callable[[DatasetItem], Checked]
) -> Iterator[list[Checked]]:
    """Batches of checked photos; the next batch is decoded while the caller writes this one."""
    workers = min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import") as pool:
        pending: list[Future[Checked]] | None = None
        for start in range(0, len(items), BATCH):
            submitted = [pool.submit(check, item) for item in items[start : start + BATCH]]
            if pending is not None:
                yield [future.result() for future in pending]
            pending = submitted
        if pending is not None:
            yield [future.result() for future in pending]


def import_dataset(
    warehouse: Warehouse, path: Path, *, city: str, fmt: str = "folders", progress: bool = False
) -> ImportReport:
    """Add every valid photo of a dataset folder; unusable files and label lines are skipped."""
    city = normalise_city(city)
    items = list(read_dataset(Path(path), fmt))
    max_pixels = warehouse.settings.sightscan_max_image_pixels
    tally = _Tally()
    with Progress(
        TextColumn("importing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not show_progress(progress),
    ) as bar:
        task = bar.add_task(city, total=len(items))
        for checked in _checked_batches(items, lambda item: _check(item, city, max_pixels)):
            batch = [c for c in checked if isinstance(c, NewImage)]
            tally.skipped.extend(c for c in checked if isinstance(c, SkippedFile))
            with warehouse.transaction() as session:
                results = add_images(session, warehouse.blobs, batch, max_pixels=max_pixels)
            for new, result in zip(batch, results, strict=True):
                tally.added += result.created
                tally.duplicates += not result.created
                tally.labels += len(new.labels) if result.created else 0
            bar.advance(task, len(checked))
    with warehouse.transaction() as session:
        refresh_marts(session)
    problems = tuple(problem for item in items for problem in item.problems)
    return ImportReport(
        city, tally.added, tally.duplicates, tally.labels, tuple(tally.skipped), problems
    )
