"""Photo credits per sight, stamped into a model's metadata when it is published.

Clients show them with a result: metadata["sights"][class_name] = {"credits": [{"author",
"licence", "source"}], "photos": n}, from the licence, author and page URL the crawl stored
for each training photo (Wikimedia Commons gives all three).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sightscan.training.dataset import TrainingSet
from sightscan.warehouse.models import ImageRow

MAX_CREDITS_PER_SIGHT = 20
_IDS_PER_QUERY = 500  # bound parameters per IN list: well under every backend's limit


def photos_per_class(training_set: TrainingSet) -> dict[str, list[int]]:
    """Warehouse image ids of the training and validation photos of each class."""
    ids: dict[str, list[int]] = {name: [] for name in training_set.class_names}
    for sample in (*training_set.train, *training_set.val):
        if not sample.key.isdigit():  # background crops have no warehouse image of their own
            continue
        for index in sorted(sample.classes):
            ids[training_set.class_names[index]].append(int(sample.key))
    return ids


def photo_credits(
    session: Session,
    image_ids: Mapping[str, Iterable[int]],
    *,
    max_credits: int = MAX_CREDITS_PER_SIGHT,
) -> dict[str, dict[str, Any]]:
    """Per class, the distinct (author, licence) of its photos with a source link each.

    Photos without an author or licence (user uploads, imports) are counted, not credited;
    a class without any photo is left out.
    """
    wanted = sorted({i for ids in image_ids.values() for i in ids})
    rows: dict[int, tuple[str | None, str | None, str | None]] = {}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        query = select(
            ImageRow.id, ImageRow.author, ImageRow.licence, ImageRow.page_url, ImageRow.source_url
        ).where(ImageRow.id.in_(chunk))
        for image_id, author, licence, page_url, source_url in session.execute(query):
            rows[image_id] = (author, licence, page_url or source_url)
    sights: dict[str, dict[str, Any]] = {}
    for name, ids in image_ids.items():
        found = [rows[i] for i in sorted(set(ids)) if i in rows]
        if not found:
            continue
        credits: list[dict[str, str | None]] = []
        seen: set[tuple[str | None, str | None]] = set()
        for author, licence, source in found:
            if (author is None and licence is None) or (author, licence) in seen:
                continue
            seen.add((author, licence))
            credits.append({"author": author, "licence": licence, "source": source})
            if len(credits) == max_credits:
                break
        sights[name] = {"credits": credits, "photos": len(found)}
    return sights
