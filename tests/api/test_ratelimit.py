"""Per-client rate limits on public writes, and the limiter itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sightscan.api.ratelimit import SlidingWindowLimiter
from sightscan.warehouse import Warehouse
from sightscan.warehouse.models import CityRequest

LIMITED = [{"sightscan_rate_limit_per_minute": 2}]


@pytest.mark.parametrize("settings_overrides", LIMITED)
def test_public_writes_over_the_limit_get_429_with_retry_after(
    client: TestClient, warehouse: Warehouse, snapshot: Callable[[], dict[str, int]]
) -> None:
    assert client.post("/api/cities/Wien/add").status_code == 200
    assert client.post("/api/cities/Wien/add").status_code == 200
    before = snapshot()
    response = client.post("/api/cities/Wien/add")
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "too many requests" in response.json()["detail"]
    assert snapshot() == before
    with warehouse.transaction() as session:
        assert session.scalars(select(CityRequest.count)).one() == 1  # one distinct client


@pytest.mark.parametrize("settings_overrides", LIMITED)
def test_uploads_share_the_limit(client: TestClient, make_image: Callable[..., bytes]) -> None:
    client.post("/api/cities/Wien/add")
    client.post("/api/cities/Wien/add")
    response = client.post("/api/cities/Wien/image",
                           files={"image": ("a.jpg", make_image(1), "image/jpeg")})
    assert response.status_code == 429


@pytest.mark.parametrize("settings_overrides", LIMITED)
def test_reads_and_operators_are_not_limited(client: TestClient,
                                             operator: dict[str, str]) -> None:
    for _ in range(5):
        assert client.get("/api/cities/").status_code == 200
        assert client.post("/api/cities/Wien/add", headers=operator).status_code == 200


@pytest.mark.parametrize("settings_overrides", LIMITED)
def test_a_wrong_key_does_not_lift_the_limit(client: TestClient) -> None:
    codes = [client.post("/api/cities/Wien/add", headers={"X-API-Key": "guess"}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 60.0, clock=clock)
    assert limiter.hit("a").allowed
    clock.now += 30
    assert limiter.hit("a").allowed
    blocked = limiter.hit("a")
    assert not blocked.allowed and blocked.retry_after == 30
    assert limiter.hit("b").allowed  # other clients have their own window
    clock.now += 30.5
    assert limiter.hit("a").allowed
    assert not limiter.hit("a").allowed


def test_rejected_hits_do_not_extend_the_wait() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, 10.0, clock=clock)
    limiter.hit("a")
    for _ in range(100):
        limiter.hit("a")
    clock.now += 10.01
    assert limiter.hit("a").allowed


def test_many_clients_do_not_grow_memory_without_bound() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, 1.0, clock=clock, max_keys=10)
    for i in range(10):
        limiter.hit(str(i))
    clock.now += 2
    limiter.hit("new")
    assert len(limiter._hits) == 1


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="expected limit >= 1"):
        SlidingWindowLimiter(0)
