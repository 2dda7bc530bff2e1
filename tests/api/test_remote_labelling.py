"""ILS_PUBLIC_ENDPOINT_URL: labelling is queued at a labelling service that runs apart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient

from fakes.server import FakeServer, Reply
from sightscan.config import Settings
from sightscan.errors import ConfigurationError, ExternalServiceError
from sightscan.http import make_client
from sightscan.labelling.remote import RemoteLabelling, labelling_scheduler
from sightscan.pipeline import Scheduler, Stage
from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import NewImage, add_image

from .conftest import API_KEY


def _city_with_a_photo(warehouse: Warehouse, make_image: Callable[..., bytes]) -> None:
    with warehouse.transaction() as session:
        add_image(session, warehouse.blobs, NewImage(make_image(3), "Rome", "Colosseum"))


# The app's TestClient is an httpx2.Client (Starlette's choice): the same API as httpx.Client.


def test_labelling_is_queued_at_the_remote_service(
    client: TestClient, scheduler: Any, warehouse: Warehouse, make_image: Callable[..., bytes]
) -> None:
    _city_with_a_photo(warehouse, make_image)
    remote = RemoteLabelling("http://testserver", API_KEY, client=cast(httpx.Client, client),
                             retries=0)
    job_id = remote.submit(Stage.LABEL, "rome", mode="new")
    assert job_id is not None
    assert [(stage, city) for stage, city, _ in scheduler.submitted] == [("label", "ROME")]
    assert remote.submit(Stage.LABEL, "Rome", mode="existing") is None  # one job at a time


def test_a_wrong_key_fails_without_showing_the_key(
    client: TestClient, warehouse: Warehouse, make_image: Callable[..., bytes]
) -> None:
    _city_with_a_photo(warehouse, make_image)
    remote = RemoteLabelling("http://testserver", "wrong-key-secret",
                             client=cast(httpx.Client, client), retries=0)
    with pytest.raises(ExternalServiceError) as failure:
        remote.submit(Stage.LABEL, "Rome")
    assert "403" in str(failure.value) and "wrong-key-secret" not in str(failure.value)


def test_the_remote_service_is_used_only_when_configured(
    make_settings: Callable[..., Settings],
) -> None:
    local = cast(Scheduler, object())  # only its identity matters
    with labelling_scheduler(make_settings(), local) as chosen:
        assert chosen is local
    remote_settings = make_settings(ils_public_endpoint_url="http://ils:8000")
    with labelling_scheduler(remote_settings, local) as remote:
        assert isinstance(remote, RemoteLabelling)
        client = remote._client
        assert not client.is_closed
    assert client.is_closed  # closed with the block, never left open
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_API_KEY"):
        with labelling_scheduler(make_settings(ils_public_endpoint_url="http://ils:8000",
                                               sightscan_api_key=None), local):
            pass


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    """Two fake services on different ports: two origins."""
    first, second = FakeServer().start(), FakeServer().start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_the_api_key_is_never_sent_across_a_cross_origin_redirect(
    servers: tuple[FakeServer, FakeServer],
) -> None:
    ils, elsewhere = servers
    elsewhere.route("POST", "/api/cities/ROME", Reply(202, {"job_id": 9}))
    ils.route("POST", "/api/cities/ROME",
              Reply(307, headers={"Location": f"{elsewhere.url}/api/cities/ROME"}))
    with make_client() as http:
        remote = RemoteLabelling(ils.url, "secret-key-123", client=http, retries=0)
        with pytest.raises(ExternalServiceError, match="another origin") as failure:
            remote.submit(Stage.LABEL, "Rome")
    assert "secret-key-123" not in str(failure.value)
    assert elsewhere.requests == []
    assert ils.requests[0].headers["x-api-key"] == "secret-key-123"


def test_a_same_origin_redirect_is_followed_with_the_key(
    servers: tuple[FakeServer, FakeServer],
) -> None:
    ils, _ = servers
    ils.route("POST", "/api/cities/ROME", Reply(308, headers={"Location": "/v2/api/cities/ROME"}))
    ils.route("POST", "/v2/api/cities/ROME", Reply(202, {"job_id": 4}))
    with make_client() as http:
        remote = RemoteLabelling(ils.url, "secret-key-123", client=http, retries=0)
        assert remote.submit(Stage.LABEL, "Rome") == 4
    assert ils.requests_to("/v2/api/cities/ROME")[0].headers["x-api-key"] == "secret-key-123"
