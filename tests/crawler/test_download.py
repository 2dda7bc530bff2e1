"""Capped photo downloads: big bodies and HTML pages are refused, not stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fakes.images import jpeg_bytes
from fakes.server import FakeServer, Reply
from sightscan.crawler.download import download_photo
from sightscan.crawler.errors import PhotoTooLargeError
from sightscan.errors import ExternalServiceError, InvalidImageError

JPEG = {"Content-Type": "image/jpeg"}


def test_an_image_is_downloaded(fake_server: FakeServer, client: httpx.Client) -> None:
    data = jpeg_bytes()
    fake_server.route("GET", "/a.jpg", Reply(200, data, JPEG))
    assert download_photo(client, f"{fake_server.url}/a.jpg", 1_000_000) == data


def test_an_html_page_is_refused(fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", "/a.jpg", Reply(200, "<html><body>Login</body></html>"))
    with pytest.raises(InvalidImageError, match="text/html"):
        download_photo(client, f"{fake_server.url}/a.jpg", 1_000_000)


def test_a_declared_oversized_photo_is_refused(fake_server: FakeServer,
                                               client: httpx.Client) -> None:
    fake_server.route("GET", "/big.jpg", Reply(200, b"\xff" * 300_000, JPEG))
    with pytest.raises(PhotoTooLargeError):
        download_photo(client, f"{fake_server.url}/big.jpg", 100_000)


def test_a_streamed_oversized_photo_stops_past_the_cap(fake_server: FakeServer,
                                                       client: httpx.Client) -> None:
    sent: list[int] = []

    def fifty_megabytes() -> Iterator[bytes]:
        for _ in range(50):
            sent.append(1)
            yield b"\xff" * 1_000_000

    fake_server.route("GET", "/big.jpg", Reply(200, b"", JPEG, chunks=fifty_megabytes()))
    with pytest.raises(PhotoTooLargeError):
        download_photo(client, f"{fake_server.url}/big.jpg", 100_000)


def test_a_missing_photo_is_a_download_failure(fake_server: FakeServer,
                                               client: httpx.Client) -> None:
    fake_server.route("GET", "/gone.jpg", Reply(404))
    with pytest.raises(ExternalServiceError, match="HTTP 404"):
        download_photo(client, f"{fake_server.url}/gone.jpg", 100_000)
