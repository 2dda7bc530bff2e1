"""The shared retry policy against a real server on loopback."""

from __future__ import annotations

import socket

import httpx
import pytest

from fakes.server import FakeServer, Reply
from sightscan.errors import ExternalServiceError
from sightscan.http import (
    USER_AGENT,
    make_client,
    request_json,
    request_with_retries,
    retry_after_seconds,
)

from .conftest import Backoff


def test_client_sends_the_sightscan_user_agent(fake_server: FakeServer,
                                                client: httpx.Client) -> None:
    fake_server.route("GET", "/x", Reply(200, {"ok": True}))
    request_json(client, "GET", f"{fake_server.url}/x")
    assert fake_server.requests[0].headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("SightScan/0.1 (+https://github.com/sightscan/sightscan)")


def test_a_server_error_is_retried_until_success(fake_server: FakeServer, client: httpx.Client,
                                                 fast: Backoff) -> None:
    fake_server.route("GET", "/x", [Reply(500, "oops"), Reply(502), Reply(200, {"ok": 1})])
    assert request_json(client, "GET", f"{fake_server.url}/x", **fast) == {"ok": 1}
    assert len(fake_server.requests) == 3


def test_429_waits_as_long_as_retry_after_says(fake_server: FakeServer,
                                               client: httpx.Client) -> None:
    fake_server.route("GET", "/x", [Reply(429, headers={"Retry-After": "7"}), Reply(200, [])])
    slept: list[float] = []
    request_with_retries(client, "GET", f"{fake_server.url}/x", sleep=slept.append,
                         backoff=0.001, max_backoff=30)
    assert slept == [7.0]


def test_retry_after_is_capped_by_max_backoff(fake_server: FakeServer,
                                              client: httpx.Client) -> None:
    fake_server.route("GET", "/x", [Reply(429, headers={"Retry-After": "3600"}), Reply(200)])
    slept: list[float] = []
    request_with_retries(client, "GET", f"{fake_server.url}/x", sleep=slept.append,
                         max_backoff=0.02)
    assert slept == [0.02]


def test_persistent_failure_raises_a_one_line_error_after_the_last_try(
        fake_server: FakeServer, client: httpx.Client, fast: Backoff) -> None:
    fake_server.route("GET", "/x", Reply(503, {"error": {"message": "back\nend down"}}))
    with pytest.raises(ExternalServiceError, match="after 3 attempts: HTTP 503: back end down"):
        request_with_retries(client, "GET", f"{fake_server.url}/x", retries=2, **fast)
    assert len(fake_server.requests) == 3


def test_a_client_error_is_not_retried(fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", "/x", Reply(404))
    with pytest.raises(ExternalServiceError, match="HTTP 404"):
        request_with_retries(client, "GET", f"{fake_server.url}/x")
    assert len(fake_server.requests) == 1


def test_timeouts_are_retried_then_reported(fake_server: FakeServer,
                                            fast: Backoff) -> None:
    fake_server.route("GET", "/slow", [Reply(200, {}, delay=0.5), Reply(200, {"ok": 1})])
    with make_client(timeout=0.1) as short:
        assert request_json(short, "GET", f"{fake_server.url}/slow", **fast) == {"ok": 1}
        fake_server.route("GET", "/slow", Reply(200, {}, delay=0.5))
        with pytest.raises(ExternalServiceError, match="timed out"):
            request_json(short, "GET", f"{fake_server.url}/slow", retries=1, **fast)


def test_a_refused_connection_is_an_external_service_error(client: httpx.Client,
                                                           fast: Backoff) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ExternalServiceError, match="connection failed"):
        request_with_retries(client, "GET", f"http://127.0.0.1:{port}/", retries=1, **fast)


def test_malformed_json_is_an_external_service_error(fake_server: FakeServer,
                                                     client: httpx.Client) -> None:
    fake_server.route("GET", "/x", Reply(200, "<html>maintenance</html>"))
    with pytest.raises(ExternalServiceError, match="malformed JSON"):
        request_json(client, "GET", f"{fake_server.url}/x")


def test_messages_never_contain_the_api_key_or_query(fake_server: FakeServer,
                                                     client: httpx.Client) -> None:
    secret = "AIza-secret-123"
    fake_server.route("GET", "/x", Reply(403, {"error": {"message": f"key {secret} is bad"}}))
    with pytest.raises(ExternalServiceError) as caught:
        request_with_retries(client, "GET", f"{fake_server.url}/x", params={"key": secret},
                             headers={"X-Goog-Api-Key": secret})
    assert secret not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
