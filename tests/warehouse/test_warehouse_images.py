"""Contract: images and labels in the warehouse, identical on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from sightscan.detections import Box, Label
from sightscan.errors import InvalidImageError, InvalidInputError, NotFoundError
from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import (
    NewImage,
    add_image,
    add_images,
    labels_of,
    set_labels,
    unlabelled_images,
)
from sightscan.warehouse.models import (
    City,
    FactSight,
    ImageRow,
    LabelRow,
    LoadChange,
    Sight,
)

MakeJpeg = Callable[[int], bytes]  # the `make_jpeg` fixture


def row_count(warehouse: Warehouse, model: type) -> int:
    with warehouse.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def blob_count(warehouse: Warehouse) -> int:
    root = Path(warehouse.blobs.root)
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))


def test_add_image_stores_row_fact_blob_and_load_change(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    data = make_jpeg(1)
    with warehouse.transaction() as session:
        added = add_image(session, warehouse.blobs, NewImage(data, "Bonn", sight="Beethoven House",
                                                              origin="crawler"))
    assert added.created
    with warehouse.transaction() as session:
        image = session.get(ImageRow, added.image_id)
        fact = session.get(FactSight, added.image_id)
        assert image is not None and fact is not None
        assert image.mime_type == "image/jpeg" and image.size_bytes == len(data)
        assert (fact.width, fact.height, fact.origin) == (24, 16, "crawler")
        city = session.scalar(select(City.name).where(City.id == fact.city_id))
        sight = session.scalar(select(Sight.name).where(Sight.id == fact.sight_id))
        assert (city, sight) == ("BONN", "Beethoven House")
    assert warehouse.blobs.get(image.blob_key) == data
    assert row_count(warehouse, LoadChange) == 1


def test_add_images_batch_returns_one_result_per_item_in_order(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    items = [NewImage(make_jpeg(i), "Köln", sight=f"Sight {i % 3}") for i in range(12)]
    with warehouse.transaction() as session:
        results = add_images(session, warehouse.blobs, items)
    assert [r.created for r in results] == [True] * 12
    assert len({r.image_id for r in results}) == 12
    assert row_count(warehouse, ImageRow) == 12
    assert row_count(warehouse, Sight) == 3
    assert row_count(warehouse, City) == 1
    assert blob_count(warehouse) == 12


def test_same_content_is_stored_once(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    data = make_jpeg(7)
    with warehouse.transaction() as session:
        first = add_image(session, warehouse.blobs, NewImage(data, "Bonn", source_url="https://a/1.jpg"))
    with warehouse.transaction() as session:
        again = add_image(session, warehouse.blobs, NewImage(data, "Bonn", source_url="https://b/2.jpg"))
    assert (again.image_id, again.created) == (first.image_id, False)
    assert row_count(warehouse, ImageRow) == 1
    assert row_count(warehouse, FactSight) == 1
    assert row_count(warehouse, LoadChange) == 1
    assert blob_count(warehouse) == 1


def test_same_source_url_is_stored_once(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    url = "https://upload.example.org/photo.jpg"
    with warehouse.transaction() as session:
        first = add_image(session, warehouse.blobs, NewImage(make_jpeg(1), "Bonn", source_url=url))
    with warehouse.transaction() as session:
        again = add_image(session, warehouse.blobs, NewImage(make_jpeg(2), "Bonn", source_url=url))
    assert (again.image_id, again.created) == (first.image_id, False)
    assert row_count(warehouse, ImageRow) == 1
    assert blob_count(warehouse) == 1


def test_duplicates_inside_one_batch_are_stored_once(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    data = make_jpeg(3)
    items = [NewImage(data, "Bonn"), NewImage(make_jpeg(4), "Bonn", source_url="https://x/y"),
             NewImage(data, "Bonn"), NewImage(make_jpeg(5), "Bonn", source_url="https://x/y")]
    with warehouse.transaction() as session:
        results = add_images(session, warehouse.blobs, items)
    assert [r.created for r in results] == [True, True, False, False]
    assert results[2].image_id == results[0].image_id
    assert results[3].image_id == results[1].image_id
    assert row_count(warehouse, ImageRow) == 2
    assert blob_count(warehouse) == 2


def test_labels_given_with_the_image_are_stored(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    labels = [Label("Kölner Dom", Box(0.1, 0.2, 0.5, 0.9)), Label("Rhein")]
    with warehouse.transaction() as session:
        added = add_image(session, warehouse.blobs,
                          NewImage(make_jpeg(1), "Köln", labels=labels, label_source="user"))
    with warehouse.transaction() as session:
        assert labels_of(session, added.image_id) == labels
        assert session.scalar(select(Sight.name)) == "Kölner Dom"


def test_set_labels_replaces_labels_of_one_source(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    with warehouse.transaction() as session:
        image_id = add_image(session, warehouse.blobs, NewImage(make_jpeg(1), "Bonn")).image_id
        set_labels(session, image_id=image_id, labels=[Label("A", Box(0, 0, 1, 1))], source="weak")
        set_labels(session, image_id=image_id, labels=[Label("B")], source="vision")
    with warehouse.transaction() as session:
        set_labels(session, image_id=image_id, labels=[Label("C", Box(0.5, 0.5, 0.6, 0.6))],
                   source="weak")
    with warehouse.transaction() as session:
        assert sorted(label.name for label in labels_of(session, image_id)) == ["B", "C"]
        set_labels(session, image_id=image_id, labels=[], source="vision")
    with warehouse.transaction() as session:
        assert [label.name for label in labels_of(session, image_id)] == ["C"]


def test_set_labels_on_unknown_image_raises_not_found(warehouse: Warehouse) -> None:
    with pytest.raises(NotFoundError), warehouse.transaction() as session:
        set_labels(session, image_id=12345, labels=[Label("A")], source="user")


def test_set_labels_rejects_unknown_source_and_non_labels(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    with warehouse.transaction() as session:
        image_id = add_image(session, warehouse.blobs, NewImage(make_jpeg(1), "Bonn")).image_id
    with pytest.raises(InvalidInputError), warehouse.transaction() as session:
        set_labels(session, image_id=image_id, labels=[Label("A")], source="hacker")
    with pytest.raises(InvalidInputError), warehouse.transaction() as session:
        set_labels(session, image_id=image_id, labels=[("A", None)], source="user")  # type: ignore[list-item]
    assert row_count(warehouse, LabelRow) == 0


@pytest.mark.parametrize(
    "coords",
    [(-0.1, 0, 0.5, 0.5), (0, 0, 1.5, 0.5), (0.5, 0, 0.5, 1), (0.6, 0, 0.5, 1), (0, 0.7, 1, 0.2),
     (math.nan, 0, 1, 1), (0, 0, 1, math.inf), ("0", 0, 1, 1)],
)
def test_box_rejects_out_of_range_inverted_and_nan(
    coords: tuple[float, float, float, float]
) -> None:
    with pytest.raises(InvalidInputError):
        Box(*coords)


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_label_rejects_empty_and_overlong_names(name: str) -> None:
    with pytest.raises(InvalidInputError):
        Label(name)


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()[:300]


def _huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [b"", _truncated_jpeg(), b"just text renamed to photo.jpg\n", _huge_png()],
    ids=["empty", "truncated", "text", "huge-pixels"],
)
def test_bad_images_are_rejected_and_nothing_is_stored(warehouse: Warehouse, data: bytes) -> None:
    with pytest.raises(InvalidImageError), warehouse.transaction() as session:
        add_image(session, warehouse.blobs, NewImage(data, "Bonn"), max_pixels=50_000_000)
    assert row_count(warehouse, ImageRow) == 0
    assert row_count(warehouse, City) == 0
    assert row_count(warehouse, LoadChange) == 0
    assert blob_count(warehouse) == 0


def test_a_batch_with_one_bad_image_stores_nothing(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    items = [NewImage(make_jpeg(i), "Bonn", sight="S") for i in range(5)]
    items.insert(3, NewImage(_truncated_jpeg(), "Bonn"))
    with pytest.raises(InvalidImageError), warehouse.transaction() as session:
        add_images(session, warehouse.blobs, items)
    assert row_count(warehouse, ImageRow) == 0
    assert row_count(warehouse, Sight) == 0
    assert blob_count(warehouse) == 0


def test_a_failing_transaction_rolls_back_every_image_of_the_batch(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    with pytest.raises(RuntimeError), warehouse.transaction() as session:
        add_images(session, warehouse.blobs, [NewImage(make_jpeg(i), "Bonn") for i in range(4)])
        raise RuntimeError("the crawler died before commit")
    assert row_count(warehouse, ImageRow) == 0
    assert row_count(warehouse, FactSight) == 0
    assert row_count(warehouse, LoadChange) == 0
    # Blobs may remain (content-addressed); a retry re-uses them and stores every row.
    with warehouse.transaction() as session:
        results = add_images(session, warehouse.blobs,
                             [NewImage(make_jpeg(i), "Bonn") for i in range(4)])
    assert all(r.created for r in results)
    assert blob_count(warehouse) == 4


def test_invalid_origin_is_rejected(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    with pytest.raises(InvalidInputError), warehouse.transaction() as session:
        add_image(session, warehouse.blobs, NewImage(make_jpeg(1), "Bonn", origin="martian"))
    assert row_count(warehouse, ImageRow) == 0


def test_unlabelled_images_lists_only_images_without_labels(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    items = [NewImage(make_jpeg(i), "Bonn", sight="Münster") for i in range(3)]
    with warehouse.transaction() as session:
        ids = [r.image_id for r in add_images(session, warehouse.blobs, items)]
        set_labels(session, image_id=ids[1], labels=[Label("Münster")], source="weak")
        other = add_image(session, warehouse.blobs, NewImage(make_jpeg(9), "Köln")).image_id
        city_id = session.scalars(
            select(FactSight.city_id).where(FactSight.image_id == ids[0])
        ).one()
    with warehouse.transaction() as session:
        found = unlabelled_images(session, city_id=city_id, limit=10)
    assert [i.image_id for i in found] == [ids[0], ids[2]]
    assert other not in {i.image_id for i in found}
    assert found[0].sight == "Münster"


def test_parallel_writers_of_the_same_image_store_it_once(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    data = make_jpeg(42)
    barrier = threading.Barrier(4)

    def writer(_: int) -> tuple[int, bool]:
        barrier.wait()
        with warehouse.transaction() as session:
            added = add_image(session, warehouse.blobs, NewImage(data, "Bonn", origin="crawler"))
        return added.image_id, added.created

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(writer, range(4)))
    assert len({image_id for image_id, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert row_count(warehouse, ImageRow) == 1
    assert row_count(warehouse, FactSight) == 1
    assert row_count(warehouse, LoadChange) == 1


def test_a_check_result_for_other_bytes_is_not_trusted(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    from sightscan.images import inspect_image

    info_of_a_real_photo = inspect_image(make_jpeg(1))
    with pytest.raises(InvalidImageError), warehouse.transaction() as session:
        add_image(session, warehouse.blobs,
                  NewImage(b"GIF89a not really", "Rome", info=info_of_a_real_photo))
    with warehouse.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ImageRow)) == 0


def test_a_batch_large_enough_for_threads_keeps_order_and_dedupes(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    photos = [make_jpeg(seed) for seed in range(20)]
    items = [NewImage(data, "Rome", f"Sight {i % 3}") for i, data in enumerate(photos + photos[:5])]
    with warehouse.transaction() as session:
        results = add_images(session, warehouse.blobs, items)
    assert [r.created for r in results] == [True] * 20 + [False] * 5
    assert [r.image_id for r in results[20:]] == [r.image_id for r in results[:5]]
    assert all(warehouse.blobs.get(warehouse.blobs.put(p)) == p for p in photos)
