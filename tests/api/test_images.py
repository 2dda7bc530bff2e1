"""POST /api/cities/{city}/image: user photos with optional seed labels."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from sightscan.warehouse import Warehouse
from sightscan.warehouse.everyday import EverydayPhoto, add_everyday_photos
from sightscan.warehouse.models import FactSight, LabelRow, Sight

Snapshot = Callable[[], dict[str, int]]


def upload(client: TestClient, data: bytes, *, city: str = "Berlin", filename: str = "photo.jpg",
           content_type: str = "image/jpeg", **fields: str) -> Any:
    return client.post(f"/api/cities/{city}/image",
                       files={"image": (filename, data, content_type)}, data=fields)


def seed_label(name: str = "Brandenburger Tor", ulx: Any = 0.1, uly: Any = 0.2, lrx: Any = 0.6,
               lry: Any = 0.9) -> dict[str, Any]:
    return {"ulx": ulx, "uly": uly, "lrx": lrx, "lry": lry, "sightName": name}


def test_a_new_photo_is_stored_with_201(client: TestClient, make_image: Callable[..., bytes],
                                        warehouse: Warehouse) -> None:
    response = upload(client, make_image(1))
    assert response.status_code == 201
    body = response.json()
    assert body == {"image_id": body["image_id"], "city": "BERLIN", "duplicate": False}
    with warehouse.transaction() as session:
        fact = session.get(FactSight, body["image_id"])
        assert fact is not None and fact.origin == "user" and (fact.width, fact.height) == (32, 24)


def test_the_same_photo_twice_is_stored_once(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    first = upload(client, make_image(2))
    after_first = snapshot()
    second = upload(client, make_image(2), filename="other-name.png", content_type="image/png")
    assert second.status_code == 200
    assert second.json() == {"image_id": first.json()["image_id"], "city": "BERLIN",
                             "duplicate": True}
    assert snapshot() == after_first


def test_a_photo_stored_for_one_city_sent_for_another_answers_with_the_city_it_is_stored_for(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    first = upload(client, make_image(3))
    after_first = snapshot()
    again = client.post("/api/cities/Hamburg/image", files={"image": ("p.png", make_image(3))})
    assert again.status_code == 200
    assert again.json() == {"image_id": first.json()["image_id"], "city": "BERLIN",
                            "duplicate": True}
    assert snapshot() == after_first

def test_a_photo_of_the_everyday_pool_is_refused_as_a_city_photo_with_409(
    client: TestClient, make_image: Callable[..., bytes], warehouse: Warehouse,
    snapshot: Snapshot
) -> None:
    # The pool holds photos of no sight: the same bytes cannot also be a photo of Berlin,
    # and the answer must not claim that it was stored for Berlin.
    upload(client, make_image(5))  # Berlin is stored
    with warehouse.transaction() as session:
        add_everyday_photos(session, warehouse.blobs,
                            [EverydayPhoto(make_image(4), "Quality images of food")])
    before = snapshot()
    response = upload(client, make_image(4), sight="Brandenburger Tor")
    assert response.status_code == 409
    assert "everyday pool" in response.json()["detail"]
    assert snapshot() == before


def test_seed_labels_are_stored_as_user_labels_with_their_sight(
    client: TestClient, make_image: Callable[..., bytes], warehouse: Warehouse
) -> None:
    labels = [seed_label(), seed_label("Fernsehturm", 0.0, 0.0, 1.0, 1.0)]
    response = upload(client, make_image(3, fmt="PNG"), filename="x.png",
                      content_type="image/png", labels=json.dumps(labels))
    assert response.status_code == 201, response.text
    with warehouse.transaction() as session:
        rows = session.scalars(select(LabelRow).order_by(LabelRow.id)).all()
        assert [(r.source, r.name, r.ul_x, r.ul_y, r.lr_x, r.lr_y) for r in rows] == [
            ("user", "Brandenburger Tor", 0.1, 0.2, 0.6, 0.9),
            ("user", "Fernsehturm", 0.0, 0.0, 1.0, 1.0),
        ]
        assert session.scalars(select(Sight.name)).all() == ["Brandenburger Tor"]


def test_the_sight_field_names_the_sight(client: TestClient, make_image: Callable[..., bytes],
                                          warehouse: Warehouse) -> None:
    assert upload(client, make_image(4), sight="  Reichstag ").status_code == 201
    with warehouse.transaction() as session:
        assert session.scalars(select(Sight.name)).all() == ["Reichstag"]


def test_the_type_is_decided_by_content_not_by_name_or_content_type(
    client: TestClient, make_image: Callable[..., bytes]
) -> None:
    response = upload(client, make_image(5, fmt="PNG"), filename="notes.txt",
                      content_type="text/plain")
    assert response.status_code == 201


def test_a_photo_upload_to_a_hostile_city_name_stores_the_normalised_name(
    client: TestClient, make_image: Callable[..., bytes], operator: dict[str, str]
) -> None:
    hostile = "%27%3B%20DROP%20TABLE%20dim_image%3B%20--"
    assert upload(client, make_image(6), city=hostile).status_code == 400  # no known city
    client.post(f"/api/cities/{hostile}/add", params={"force": "true"}, headers=operator)
    response = upload(client, make_image(6), city=hostile)
    assert response.status_code == 201
    assert response.json()["city"] == "DROP TABLE DIM_IMAGE --"
    assert upload(client, make_image(7)).status_code == 201  # dim_image still there


TRUNCATED_JPEG_CUT = 0.6


@pytest.mark.parametrize(
    "case",
    ["empty", "truncated-jpeg", "text-named-jpg", "html-as-png", "svg"],
)
def test_files_that_are_not_intact_images_are_rejected_and_change_nothing(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot, case: str
) -> None:
    jpeg = make_image(8, size=(64, 48))
    data = {
        "empty": b"",
        "truncated-jpeg": jpeg[: int(len(jpeg) * TRUNCATED_JPEG_CUT)],
        "text-named-jpg": b"just some notes, not a photo\n" * 20,
        "html-as-png": b"<html><script>alert(1)</script></html>",
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    }[case]
    before = snapshot()
    response = upload(client, data)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    assert "Traceback" not in response.text
    assert snapshot() == before


def test_a_decompression_bomb_png_is_rejected_without_decoding(
    client: TestClient, png_bomb: bytes, snapshot: Snapshot
) -> None:
    assert len(png_bomb) < 200_000
    before = snapshot()
    response = upload(client, png_bomb, filename="bomb.png", content_type="image/png")
    assert response.status_code == 400
    assert snapshot() == before


@pytest.mark.parametrize("settings_overrides", [{"sightscan_max_image_pixels": 1000}])
def test_an_image_over_the_pixel_limit_is_rejected(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    before = snapshot()
    response = upload(client, make_image(9, size=(40, 30)))
    assert response.status_code == 400
    assert "at most 1000 pixels" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("settings_overrides", [{"sightscan_max_upload_bytes": 2000}])
def test_an_oversized_upload_is_rejected_with_413(
    client: TestClient, snapshot: Snapshot
) -> None:
    noise = Image.frombytes("RGB", (60, 40), random.Random(10).randbytes(60 * 40 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    big = buffer.getvalue()
    assert len(big) > 2000
    before = snapshot()
    response = upload(client, big, filename="big.png", content_type="image/png")
    assert response.status_code == 413
    assert "at most 2000 bytes" in response.json()["detail"]
    assert snapshot() == before


async def call_asgi(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]],
                    chunks: Iterator[bytes]) -> tuple[int, int]:
    """POST `chunks` to the app as a streamed body; (status, chunks the app pulled)."""
    pulled = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver"), *headers],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    await app(scope, receive, send)
    return status, pulled


@pytest.mark.parametrize("settings_overrides", [{"sightscan_max_upload_bytes": 1000}])
def test_an_oversized_streamed_upload_is_cut_off_while_reading(
    app: FastAPI, snapshot: Snapshot
) -> None:
    def body() -> Iterator[bytes]:  # 12.5 MiB offered without a Content-Length
        yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(200):
            yield b"\xff" * 64 * 1024

    before = snapshot()
    status, pulled = asyncio.run(call_asgi(
        app, "/api/cities/Berlin/image",
        [(b"content-type", b"multipart/form-data; boundary=xyz")], body()))
    assert status == 413
    assert pulled <= 6  # limit 1000 B + 256 KiB form overhead: a handful of 64 KiB chunks
    assert snapshot() == before


def test_a_declared_oversized_body_is_refused_before_reading(client: TestClient) -> None:
    read = 0

    def body() -> Iterator[bytes]:
        nonlocal read
        read += 1
        yield b"x"

    response = client.post(
        "/api/cities/Berlin/image", content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz",
                 "Content-Length": str(10**12)},
    )
    assert response.status_code == 413
    assert read == 0


@pytest.mark.parametrize(
    "labels",
    [
        json.dumps([seed_label(ulx=1.5)]),
        json.dumps([seed_label(ulx=-0.1)]),
        json.dumps([seed_label(ulx=0.7, lrx=0.6)]),
        json.dumps([seed_label(uly="a")]),
        json.dumps([seed_label(lry=None)]),
        json.dumps([seed_label(name="")]),
        json.dumps([seed_label(name="x" * 201)]),
        json.dumps([{"ulx": 0.1, "uly": 0.1, "lrx": 0.5, "lry": 0.5}]),
        json.dumps([seed_label()] * 51),
        json.dumps({"sightName": "not a list"}),
        json.dumps(["a string"]),
        '[{"ulx": NaN, "uly": 0, "lrx": 1, "lry": 1, "sightName": "x"}]',
        "not json",
    ],
    ids=["ulx>1", "ulx<0", "lrx<ulx", "text-coord", "null-coord", "empty-name", "long-name",
         "no-name", "too-many", "object", "string-item", "nan", "invalid-json"],
)
def test_invalid_labels_reject_the_whole_upload(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot, labels: str
) -> None:
    before = snapshot()
    response = upload(client, make_image(11), labels=labels)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    assert snapshot() == before


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": {"image": "aGVsbG8="}},
        {"data": {"image": "not a file"}},
        {"files": {"photo": ("a.jpg", b"123", "image/jpeg")}},
    ],
    ids=["json-body", "text-field", "wrong-field-name"],
)
def test_a_request_without_the_image_file_field_is_400(
    client: TestClient, snapshot: Snapshot, request_kwargs: dict[str, Any]
) -> None:
    before = snapshot()
    response = client.post("/api/cities/Berlin/image", **request_kwargs)
    assert response.status_code == 400
    assert snapshot() == before


def test_two_files_in_one_upload_are_refused(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    before = snapshot()
    response = client.post("/api/cities/Berlin/image", files=[
        ("image", ("a.jpg", make_image(12), "image/jpeg")),
        ("image", ("b.jpg", make_image(13), "image/jpeg")),
    ])
    assert response.status_code == 400
    assert snapshot() == before


def test_an_upload_for_an_unusable_city_is_400_and_changes_nothing(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    before = snapshot()
    response = upload(client, make_image(14), city="%22%3B%27")
    assert response.status_code == 400
    assert snapshot() == before


@pytest.mark.parametrize(("fmt", "mime"), [("AVIF", "image/avif"), ("HEIF", "image/heic")])
def test_phone_photos_in_avif_and_heic_are_stored_with_their_type(
    client: TestClient, warehouse: Warehouse, fmt: str, mime: str
) -> None:
    from sightscan.images import register_formats
    from sightscan.warehouse.models import ImageRow

    register_formats()
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buffer, format=fmt)
    response = upload(client, buffer.getvalue(), filename=f"phone.{fmt.lower()}",
                      content_type=mime)
    assert response.status_code == 201, response.text
    with warehouse.transaction() as session:
        row = session.get(ImageRow, response.json()["image_id"])
        fact = session.get(FactSight, response.json()["image_id"])
        assert row is not None and row.mime_type == mime
        assert fact is not None and (fact.width, fact.height) == (40, 30)
