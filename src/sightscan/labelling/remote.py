"""Ask a labelling service that runs apart (ILS_PUBLIC_ENDPOINT_URL) to label a city.

The seed's refresher called the ILS over HTTP; when ILS_PUBLIC_ENDPOINT_URL is set, SightScan
does the same through the ILS endpoints of the public API (`POST /api/cities/{city}` for a
new city, `/existing` for a supported one), with the operator's API key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from sightscan.cities import normalise_city
from sightscan.config import Settings
from sightscan.errors import ConfigurationError, InvalidInputError
from sightscan.http import decode_json, make_client, request_with_retries
from sightscan.pipeline import Scheduler, Stage


class RemoteLabelling:
    """A Scheduler for the `label` stage that queues the work at a remote ILS."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.Client | None = None,
        retries: int = 3,
    ) -> None:
        if not api_key:
            raise ConfigurationError(
                "SIGHTSCAN_API_KEY: needed to call the labelling service at ILS_PUBLIC_ENDPOINT_URL"
            )
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._owns_client = client is None
        self._client = client or make_client()
        self._retries = retries

    def close(self) -> None:
        """Close the HTTP client if this object opened it."""
        if self._owns_client:
            self._client.close()

    def submit(self, stage: Stage, city: str, **options: Any) -> int | None:
        """Queue labelling of `city` at the ILS; its job id, or None when one is queued there."""
        if stage != Stage.LABEL:
            raise InvalidInputError(
                f"the remote labelling service runs `label` only, not {stage!r}"
            )
        path = f"/api/cities/{quote(normalise_city(city), safe='')}"
        if options.get("mode") == "existing":
            path += "/existing"
        response = request_with_retries(
            self._client,
            "POST",
            self._base + path,
            headers={"X-API-Key": self._key},
            retries=self._retries,
            service="labelling service",
        )
        job_id = decode_json(response, "labelling service").get("job_id")
        return int(job_id) if job_id is not None else None


@contextmanager
def labelling_scheduler(settings: Settings, local: Scheduler) -> Iterator[Scheduler]:
    """Where `label` work goes: the remote ILS when ILS_PUBLIC_ENDPOINT_URL is set, else `local`.

    A remote one holds an HTTP client, closed when the block ends.
    """
    if not settings.ils_public_endpoint_url:
        yield local
        return
    key = settings.sightscan_api_key.get_secret_value() if settings.sightscan_api_key else None
    remote = RemoteLabelling(settings.ils_public_endpoint_url, key)
    try:
        yield remote
    finally:
        remote.close()
