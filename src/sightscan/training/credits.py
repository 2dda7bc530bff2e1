"""Photo credits and what each sight is, stamped into a model's metadata when it is published.

Clients show them with a result: metadata["sights"][class_name] = {"credits": [{"author",
"licence", "source"}], "photos": n, "description": ..., "url": ...}. Credits come from the
licence, author and page URL the crawl stored for each training photo (Wikimedia Commons
gives all three); the description and link from the sight the class's photos were crawled
for (dim_sight, filled by discovery: Wikidata, Places, OSM), matched to the class name
through the same label-name merging as training, and left out when none is known.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sightscan.training.dataset import TrainingSet
from sightscan.training.names import merge_label_names
from sightscan.warehouse.models import City, FactSight, ImageRow, Sight

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
    for name, info in sight_details(session, image_ids).items():
        if name in sights:
            sights[name].update(info)
    return sights


SightRow = tuple[str, str | None, str | None]  # the crawl's sight name, description, url


def sight_details(
    session: Session, image_ids: Mapping[str, Iterable[int]]
) -> dict[str, dict[str, str]]:
    """Per class, {"description", "url"} (each only when known) of the sight it stands for.

    The class's sight is among the sights its photos were crawled for: the ones whose name
    merges with the class name (as training merged label names), most photos first; when no
    name merges (a labeller named it differently), the sight of most of its photos.
    """
    wanted = sorted({i for ids in image_ids.values() for i in ids})
    sight_of: dict[int, SightRow] = {}
    city = None
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        query = (
            select(FactSight.image_id, Sight.name, Sight.description, Sight.url, City.name)
            .join(Sight, Sight.id == FactSight.sight_id)
            .join(City, City.id == Sight.city_id)
            .where(FactSight.image_id.in_(chunk))
        )
        for image_id, name, description, url, city_name in session.execute(query):
            sight_of[image_id] = (name, description, url)
            city = city_name
    details: dict[str, dict[str, str]] = {}
    for class_name, ids in image_ids.items():
        counts = Counter(sight_of[i] for i in set(ids) if i in sight_of)
        if not counts:
            continue
        ranked = sorted(counts, key=lambda row: (-counts[row], row[0]))
        mapping = merge_label_names([class_name, *(row[0] for row in ranked)], city)
        own = [row for row in ranked if mapping.get(row[0]) == mapping.get(class_name)]
        if not own and counts[ranked[0]] * 2 > sum(counts.values()):
            own = ranked[:1]
        description = next((row[1] for row in own if row[1]), None)
        url = next((row[2] for row in own if row[2]), None)
        info = {"description": description, "url": url}
        if description or url:
            details[class_name] = {k: v for k, v in info.items() if v}
    return details
