"""Outgoing HTTP: one polite client factory and one retry policy for every external service.

Every crawler provider takes an injected `httpx.Client`, so tests use real HTTP on loopback.
Failures leave this module as `ExternalServiceError` with a one-line reason that names the
service host and path, never a query string, header or API key.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from sightscan import __version__
from sightscan.errors import ExternalServiceError

log = logging.getLogger(__name__)

USER_AGENT = (
    f"SightScan/{'.'.join(__version__.split('.')[:2])} (+https://github.com/sightscan/sightscan)"
)
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
SECRET_HEADERS = frozenset(
    {"x-goog-api-key", "x-api-key", "authorization", "proxy-authorization", "cookie"}
)


def make_client(
    timeout: float = 30.0, user_agent: str = USER_AGENT, *, connect_timeout: float = 10.0
) -> httpx.Client:
    """A client with SightScan's User-Agent and bounded timeouts (caller closes it)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
        headers={"User-Agent": user_agent},
        follow_redirects=True,
    )


def describe_url(url: str | httpx.URL) -> str:
    """host/path of a URL: safe for messages (no query string, credentials or fragment)."""
    parts = urlsplit(str(url))
    return f"{parts.hostname or ''}{parts.path}"


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header (seconds or HTTP date) into seconds, None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_options(retries: int, backoff: float, max_backoff: float) -> dict[str, Any]:
    """The retry keywords of `request_with_retries`, as a provider keeps them for each call."""
    return {"retries": retries, "backoff": backoff, "max_backoff": max_backoff}


def backoff_delay(attempt: int, backoff: float, max_backoff: float) -> float:
    """Exponential backoff with jitter for retry number `attempt` (0-based), at most max_backoff."""
    base = min(max_backoff, backoff * (2.0**attempt))
    return base * (0.5 + random.random() / 2)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def error_detail(response: httpx.Response, limit: int = 160) -> str:
    """A short reason from an error body: Google/MediaWiki `error` messages or the status text."""
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            detail = str(err.get("message") or err.get("info") or err.get("status") or "")
        elif isinstance(err, str):
            detail = err
    if not detail:
        detail = response.reason_phrase or ""
    return " ".join(detail.split())[:limit]


MAX_REDIRECTS = 5


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _send(
    client: httpx.Client, request: httpx.Request, *, stream: bool, name: str, credentials: bool
) -> httpx.Response:
    """Send `request`; with credentials, follow redirects only within the same origin.

    httpx drops `Authorization` on a cross-origin redirect but keeps other headers, such as
    X-API-Key: a request that carries a secret header never leaves its origin.
    """
    if not credentials:
        return client.send(request, stream=stream)
    origin = _origin(request.url)
    for _ in range(MAX_REDIRECTS + 1):
        response = client.send(request, stream=stream, follow_redirects=False)
        following = response.next_request
        if following is None:
            return response
        response.close()
        if _origin(following.url) != origin:
            raise ExternalServiceError(
                f"{name} redirected to {describe_url(following.url)}, another origin; "
                "not following it with credentials (configure the final address instead)"
            )
        request = following
    raise ExternalServiceError(f"{name} failed: more than {MAX_REDIRECTS} redirects")


def request_with_retries(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    data: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    stream: bool = False,
    service: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Send a request, retrying transport errors, 429 (Retry-After, capped) and 5xx.

    Makes at most `retries + 1` attempts. A request with a secret header (API key,
    Authorization, cookie) follows redirects only within its origin. Returns the first
    2xx/3xx response; with
    `stream=True` its body is unread and the caller must close it. Raises
    ExternalServiceError for other 4xx at once and after the last failed attempt.
    """
    name = service or describe_url(url)
    secrets = [v for k, v in (headers or {}).items() if k.lower() in SECRET_HEADERS]
    request = client.build_request(
        method, url, params=params, json=json, data=data, headers=headers
    )
    reason = "no attempt made"
    for attempt in range(retries + 1):
        delay: float | None = None
        try:
            response = _send(client, request, stream=stream, name=name, credentials=bool(secrets))
        except httpx.TimeoutException as exc:
            reason = f"timed out ({type(exc).__name__})"
        except httpx.TransportError as exc:
            reason = f"connection failed ({type(exc).__name__})"
        else:
            if response.status_code < 400:
                return response
            if stream:
                response.read()
            response.close()
            reason = f"HTTP {response.status_code}"
            detail = error_detail(response)
            if detail:
                reason = f"{reason}: {detail}"
            if response.status_code not in RETRYABLE_STATUS:
                raise ExternalServiceError(f"{name} failed: {_redact(reason, secrets)}")
            if response.status_code == 429:
                delay = retry_after_seconds(response.headers.get("Retry-After"))
        if attempt == retries:
            break
        wait = backoff_delay(attempt, backoff, max_backoff) if delay is None else delay
        wait = min(wait, max_backoff)
        log.info(
            "%s: %s; retry %d/%d in %.2fs",
            name,
            _redact(reason, secrets),
            attempt + 1,
            retries,
            wait,
        )
        sleep(wait)
    raise ExternalServiceError(
        f"{name} failed after {retries + 1} attempts: {_redact(reason, secrets)}"
    )


def request_json(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Any:
    """`request_with_retries` then decode JSON; malformed JSON raises ExternalServiceError."""
    kwargs.pop("stream", None)
    response = request_with_retries(client, method, url, **kwargs)
    return decode_json(response, kwargs.get("service") or describe_url(url))


def decode_json(response: httpx.Response, name: str) -> Any:
    """The JSON body of a response, or ExternalServiceError naming the service."""
    try:
        return response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "unknown type").split(";")[0]
        raise ExternalServiceError(
            f"{name} returned malformed JSON ({content_type}, {len(response.content)} bytes)"
        ) from None
