"""Image work is bounded: a pixel budget, decodes off the event loop, known photos not decoded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sightscan.api import create_app
from sightscan.api.decoding import DecodeGate, PixelBudget, peek_pixels
from sightscan.config import Settings
from sightscan.warehouse import Warehouse

from .conftest import RecordingScheduler

Snapshot = Callable[[], dict[str, int]]


@pytest.mark.parametrize(("path", "expected"), [("/api/cities/Berlin/image", 201),
                                                ("/api/cities/Berlin/detect", 404)])
def test_a_request_waiting_for_decode_budget_leaves_health_answering(
    app: FastAPI, make_image: Callable[..., bytes], path: str, expected: int
) -> None:
    gate: DecodeGate = app.state.decode_gate

    async def scenario() -> None:
        held = await gate.budget.acquire(gate.budget.total)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            photo = asyncio.create_task(client.post(
                path, files={"image": ("a.png", make_image(1, fmt="PNG"), "image/png")}))
            while gate.budget.waiting == 0:  # the photo is parsed and now waits for pixels
                assert not photo.done(), photo.result().text
                await asyncio.sleep(0.01)
            health = await asyncio.wait_for(client.get("/health"), timeout=30)
            assert health.status_code == 200
            assert not photo.done()
            gate.budget.release(held)
            assert (await photo).status_code == expected
        assert gate.budget.free == gate.budget.total

    asyncio.run(scenario())


def test_a_known_photo_is_answered_from_its_hash_without_decoding(
    client: TestClient, make_image: Callable[..., bytes], warehouse: Warehouse,
    make_settings: Callable[..., Settings], snapshot: Snapshot,
) -> None:
    photo = make_image(2, size=(40, 30))
    first = client.post("/api/cities/Berlin/image", files={"image": ("a.jpg", photo, "image/jpeg")})
    assert first.status_code == 201
    # The same warehouse behind an API that could not decode this photo any more (too many
    # pixels): the duplicate is still recognised, so it was never decoded.
    strict = make_settings(sightscan_max_image_pixels=100)
    strict_app = create_app(strict, warehouse=warehouse, scheduler=RecordingScheduler(warehouse))
    before = snapshot()
    with TestClient(strict_app) as strict_client:
        again = strict_client.post("/api/cities/Berlin/image",
                                   files={"image": ("b.jpg", photo, "image/jpeg")})
        other = strict_client.post("/api/cities/Berlin/image",
                                   files={"image": ("c.jpg", make_image(3, size=(40, 30)),
                                                    "image/jpeg")})
    assert again.status_code == 200
    assert again.json() == {"image_id": first.json()["image_id"], "city": "BERLIN",
                            "duplicate": True}
    assert other.status_code == 400  # a new photo is decoded and checked as before
    assert snapshot() == before


def test_the_pixel_budget_serves_in_order_and_caps_one_request_at_the_whole_budget() -> None:
    async def scenario() -> list[str]:
        budget = PixelBudget(100)
        order: list[str] = []

        async def take(name: str, pixels: int) -> None:
            amount = await budget.acquire(pixels)
            order.append(name)
            await asyncio.sleep(0.01)
            budget.release(amount)

        first = await budget.acquire(80)
        tasks = [asyncio.create_task(take("big", 10**9)), asyncio.create_task(take("small", 5))]
        while budget.waiting < 1:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert order == []  # "small" would fit, but waits behind "big": first come, first served
        budget.release(first)
        await asyncio.gather(*tasks)
        assert budget.free == 100
        return order

    assert asyncio.run(scenario()) == ["big", "small"]


def test_a_cancelled_waiter_gives_nothing_away() -> None:
    async def scenario() -> int:
        budget = PixelBudget(10)
        held = await budget.acquire(10)
        waiter = asyncio.create_task(budget.acquire(5))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        budget.release(held)
        return budget.free

    assert asyncio.run(scenario()) == 10


def test_peek_pixels_reads_the_header_only(make_image: Callable[..., bytes]) -> None:
    assert peek_pixels(make_image(1, size=(40, 30), fmt="PNG")[:100]) == 1200  # header only
    assert peek_pixels(b"not an image") == 1
