"""Google Cloud Vision landmark detection as a labeller (the paid one, behind a hard cap).

Every request first asks the injected `reserve_call()` for one unit of the city's budget;
when it says no, QuotaExceededError is raised and no request is made. The library is the
`gcp` extra and imported lazily. The REST transport is used, so `endpoint` may point at a
local fake server: an `http://` endpoint gets anonymous credentials (nothing secret is ever
sent over plain HTTP); otherwise GOOGLE_APPLICATION_CREDENTIALS or application default
credentials are used.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sightscan.detections import Box, Label
from sightscan.errors import (
    ConfigurationError,
    ExternalServiceError,
    InvalidImageError,
    QuotaExceededError,
)
from sightscan.labelling.base import LabellingItem

log = logging.getLogger(__name__)

VISION_SCOPE = "https://www.googleapis.com/auth/cloud-vision"
INSTALL_HINT = "google-cloud-vision is not installed: pip install sightscan[gcp]"
INVALID_ARGUMENT = 3  # google.rpc.Code: the image itself was rejected
_URL_PREFIX = re.compile(r"^[A-Z]+ \S+: ")  # api_core prefixes "POST <url>: " to messages

ReserveCall = Callable[[], bool]


def _vision() -> Any:
    try:
        return importlib.import_module("google.cloud.vision")
    except ImportError:
        raise ConfigurationError(INSTALL_HINT) from None


def make_vision_client(endpoint: str | None = None, credentials_file: Path | None = None) -> Any:
    """An ImageAnnotatorClient on the REST transport (anonymous for an http:// endpoint)."""
    vision = _vision()
    from google.auth.exceptions import GoogleAuthError

    options: dict[str, Any] = {"api_endpoint": endpoint} if endpoint else {}
    credentials: Any = None
    try:
        if endpoint and endpoint.startswith("http://"):
            auth: Any = importlib.import_module("google.auth.credentials")
            credentials = auth.AnonymousCredentials()
        elif credentials_file is not None:
            service_account: Any = importlib.import_module("google.oauth2.service_account")
            credentials = service_account.Credentials.from_service_account_file(
                str(credentials_file), scopes=[VISION_SCOPE]
            )
        return vision.ImageAnnotatorClient(
            credentials=credentials, transport="rest", client_options=options
        )
    except (GoogleAuthError, OSError, ValueError) as exc:
        raise ConfigurationError(
            f"GOOGLE_APPLICATION_CREDENTIALS: could not load Vision credentials "
            f"({type(exc).__name__})"
        ) from None


def box_from_vertices(
    vertices: Sequence[tuple[float, float]], width: int, height: int
) -> Box | None:
    """The relative box around pixel vertices, clipped to the image; None when degenerate."""
    if not vertices or width < 1 or height < 1:
        return None
    xs = [min(max(x / width, 0.0), 1.0) for x, _ in vertices]
    ys = [min(max(y / height, 0.0), 1.0) for _, y in vertices]
    x1, x2, y1, y2 = min(xs), max(xs), min(ys), max(ys)
    if x2 <= x1 or y2 <= y1:
        return None
    return Box(x1, y1, x2, y2)


class VisionLabeller:
    """Landmark names and boxes from Google Cloud Vision, one capped call per photo."""

    def __init__(
        self,
        reserve_call: ReserveCall,
        *,
        endpoint: str | None = None,
        credentials_file: Path | None = None,
        client: Any = None,
        max_results: int = 5,
        min_score: float = 0.3,
        timeout: float = 60.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        retry_deadline: float = 120.0,
    ) -> None:
        self._reserve_call = reserve_call
        self._client = (
            client if client is not None else make_vision_client(endpoint, credentials_file)
        )
        self._max_results = max_results
        self._min_score = min_score
        self._timeout = timeout
        self._retry = _make_retry(backoff, max_backoff, retry_deadline)

    def label(self, item: LabellingItem) -> list[Label]:
        """Landmarks scoring at least `min_score`, best first; one name appears once."""
        if not self._reserve_call():
            raise QuotaExceededError(f"the Vision call cap for {item.city} is reached")
        response = self._annotate(item.image_bytes)
        if response.error.code:
            message = " ".join(response.error.message.split())[:160]
            if response.error.code == INVALID_ARGUMENT:
                raise InvalidImageError(f"Google Vision rejected the image: {message}")
            raise ExternalServiceError(
                f"Google Vision failed: code {response.error.code}: {message}"
            )
        best: dict[str, tuple[float, Label]] = {}
        for annotation in response.landmark_annotations:
            name = " ".join(annotation.description.split())[:200]
            if not name or annotation.score < self._min_score:
                continue
            vertices = [(v.x, v.y) for v in annotation.bounding_poly.vertices]
            if not vertices:
                vertices = [
                    (v.x * item.width, v.y * item.height)
                    for v in annotation.bounding_poly.normalized_vertices
                ]
            label = Label(name, box_from_vertices(vertices, item.width, item.height))
            key = name.casefold()
            if key not in best or annotation.score > best[key][0]:
                best[key] = (annotation.score, label)
        return [label for _, label in sorted(best.values(), key=lambda p: -p[0])]

    def _annotate(self, content: bytes) -> Any:
        vision = _vision()
        from google.api_core import exceptions as core
        from google.protobuf.json_format import ParseError
        from requests import RequestException

        request = {
            "image": {"content": content},
            "features": [
                {"type_": vision.Feature.Type.LANDMARK_DETECTION, "max_results": self._max_results}
            ],
        }
        try:
            batch = self._client.batch_annotate_images(
                requests=[request], retry=self._retry, timeout=self._timeout
            )
        except core.RetryError as exc:
            cause = exc.cause if exc.cause is not None else exc
            raise ExternalServiceError(
                f"Google Vision failed after retries: {_reason(cause)}"
            ) from None
        except (core.GoogleAPICallError, RequestException) as exc:
            raise ExternalServiceError(f"Google Vision failed: {_reason(exc)}") from None
        except ParseError:
            raise ExternalServiceError("Google Vision returned a malformed JSON body") from None
        if len(batch.responses) != 1:
            raise ExternalServiceError(
                f"Google Vision returned {len(batch.responses)} responses for one image"
            )
        return batch.responses[0]


def _reason(exc: BaseException) -> str:
    from google.api_core import exceptions as core

    if isinstance(exc, core.GoogleAPICallError):
        code = exc.code if exc.code is not None else "error"
        message = _URL_PREFIX.sub("", " ".join(str(exc.message).split()))[:160]
        return f"HTTP {code}: {message}" if message else f"HTTP {code}"
    return type(exc).__name__


def _make_retry(backoff: float, max_backoff: float, deadline: float) -> Any:
    from google.api_core import exceptions as core
    from google.api_core import retry
    from requests import ConnectionError as RequestsConnectionError
    from requests import Timeout as RequestsTimeout

    predicate = retry.if_exception_type(
        core.TooManyRequests,
        core.InternalServerError,
        core.BadGateway,
        core.ServiceUnavailable,
        core.GatewayTimeout,
        core.DeadlineExceeded,
        RequestsConnectionError,
        RequestsTimeout,
    )
    return retry.Retry(
        predicate=predicate, initial=backoff, maximum=max_backoff, multiplier=2.0, timeout=deadline
    )
