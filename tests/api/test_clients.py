"""Who a client is (trusted proxies only) and how fast it may guess the API key."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sightscan.api.deps import forwarded_client
from sightscan.config import load_settings
from sightscan.errors import ConfigurationError

from .conftest import API_KEY

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "header", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # not from a proxy: the header is ignored
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # spoofed leftmost hop
        ("10.1.1.1", ["6.6.6.6, 198.51.100.7, 10.2.2.2"], "198.51.100.7"),  # two proxies
        ("10.1.1.1", ["6.6.6.6", "198.51.100.7"], "198.51.100.7"),  # header sent twice
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["10.3.3.3"], "10.3.3.3"),  # only proxies: the leftmost one
    ],
)
def test_the_client_is_the_rightmost_hop_not_added_by_a_trusted_proxy(
    peer: str, header: list[str], expected: str
) -> None:
    assert forwarded_client(peer, header, TRUSTED) == expected


def test_trusted_proxies_are_validated_at_start() -> None:
    assert load_settings(sightscan_trusted_proxies="10.0.0.0/8, ::1").trusted_proxy_networks
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_TRUSTED_PROXIES"):
        load_settings(sightscan_trusted_proxies="10.0.0.0/8, proxy.example")


@pytest.mark.parametrize("settings_overrides", [{"sightscan_rate_limit_per_minute": 2}])
def test_by_default_a_forwarded_header_cannot_buy_a_fresh_rate_limit(client: TestClient) -> None:
    codes = [client.post("/api/cities/Wien/add",
                         headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
             for n in range(3)]
    assert codes == [200, 200, 429]


@pytest.mark.parametrize("settings_overrides", [
    {"sightscan_rate_limit_per_minute": 2, "sightscan_trusted_proxies": "127.0.0.1"},
])
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(app: FastAPI) -> None:
    async def codes() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            sent = ["198.51.100.1"] * 3 + ["6.6.6.6, 198.51.100.2"] * 2
            return [(await c.post("/api/cities/Wien/add",
                                  headers={"X-Forwarded-For": hop})).status_code
                    for hop in sent]

    assert asyncio.run(codes()) == [200, 200, 429, 200, 200]


def test_wrong_api_keys_are_throttled_per_client_and_the_right_one_too_once_blocked(
    client: TestClient,
) -> None:
    codes = [client.post("/api/cities/Oslo/add", params={"force": "true"},
                         headers={"X-API-Key": f"guess-{n}"}).status_code for n in range(7)]
    assert codes == [403] * 5 + [429] * 2
    blocked = client.post("/api/cities/Oslo/add", params={"force": "true"},
                          headers={"X-API-Key": API_KEY})
    assert blocked.status_code == 429
    assert "wrong API keys" in blocked.json()["detail"]
    assert int(blocked.headers["retry-after"]) > 0


def test_a_wrong_key_on_a_public_write_counts_as_a_failed_attempt(client: TestClient) -> None:
    for n in range(5):
        assert client.post("/api/cities/Wien/add",
                           headers={"X-API-Key": f"guess-{n}"}).status_code == 200
    assert client.post("/api/cities/Wien/add",
                       headers={"X-API-Key": "guess-x"}).status_code == 429
    assert client.post("/api/cities/Wien/add").status_code == 200  # no key: an ordinary client
