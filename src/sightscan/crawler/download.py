"""Capped photo downloads: stream, stop past the byte cap, refuse text bodies early."""

from __future__ import annotations

import httpx

from sightscan.crawler.errors import PhotoTooLargeError
from sightscan.errors import ExternalServiceError, InvalidImageError
from sightscan.http import describe_url, request_with_retries

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


def download_photo(
    client: httpx.Client,
    url: str,
    max_bytes: int,
    *,
    retries: int = 2,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> bytes:
    """GET `url` and return at most `max_bytes` bytes of an image body.

    Raises PhotoTooLargeError past the cap (declared or streamed), InvalidImageError for an
    HTML/JSON/text body, ExternalServiceError when the download fails after retries.
    """
    response = request_with_retries(
        client, "GET", url, retries=retries, backoff=backoff, max_backoff=max_backoff, stream=True
    )
    try:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type.startswith(TEXT_TYPES):
            raise InvalidImageError(
                f"expected an image from {describe_url(url)}, got {content_type}"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise PhotoTooLargeError(f"expected at most {max_bytes} bytes, got {declared} declared")
        chunks: list[bytes] = []
        received = 0
        try:
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise PhotoTooLargeError(
                        f"expected at most {max_bytes} bytes, got more while streaming"
                    )
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ExternalServiceError(
                f"{describe_url(url)} failed while downloading ({type(exc).__name__})"
            ) from None
    finally:
        response.close()
    return b"".join(chunks)
