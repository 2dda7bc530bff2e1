"""Google Places (New) Text Search discovery against a fake Places server."""

from __future__ import annotations

import httpx
import pytest

from fakes.places import SEARCH_PATH, google_error, place, places_handler
from fakes.server import FakeServer, Reply
from sightscan.crawler.places import FIELD_MASK, PlacesDiscovery
from sightscan.errors import ConfigurationError, ExternalServiceError

PLACES = [
    place("p1", "Museum Island", 52.52, 13.40, 900),
    place("p2", "Brandenburg Gate", 52.516, 13.377, 150_000,
          summary="Iconic 18th-century neoclassical triumphal arch."),
    place("p3", "Reichstag", 52.518, 13.376, 80_000),
    place("p4", "Checkpoint Charlie", 52.507, 13.39, 40_000),
]


def discovery(server: FakeServer, client: httpx.Client, key: str = "test-key") -> PlacesDiscovery:
    return PlacesDiscovery(client, key, url=f"{server.url}{SEARCH_PATH}", backoff=0.001,
                           max_backoff=0.01)


def test_sights_are_ranked_by_rating_count(fake_server: FakeServer,
                                           client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES))
    sights = discovery(fake_server, client).find_sights("Berlin", 3)
    assert [s.name for s in sights] == ["Brandenburg Gate", "Reichstag", "Checkpoint Charlie"]
    assert (sights[0].lat, sights[0].lon, sights[0].source, sights[0].source_id) == (
        52.516, 13.377, "places", "p2")


def test_each_sight_has_its_editorial_summary_and_maps_link(fake_server: FakeServer,
                                                            client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES))
    gate, reichstag = discovery(fake_server, client).find_sights("Berlin", 2)
    assert gate.description == "Iconic 18th-century neoclassical triumphal arch."
    assert gate.url == PLACES[1]["googleMapsUri"]
    assert gate.url is not None and gate.url.startswith("https://maps.google.com/?cid=")
    assert reichstag.description is None and reichstag.url == PLACES[2]["googleMapsUri"]


def test_fields_outside_the_mask_are_not_answered(fake_server: FakeServer,
                                                  client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES))
    reply = client.post(f"{fake_server.url}{SEARCH_PATH}", json={"textQuery": "x"},
                        headers={"X-Goog-Api-Key": "test-key",
                                 "X-Goog-FieldMask": "places.displayName"})
    assert reply.json()["places"][0] == {"displayName": {"text": "Museum Island",
                                                         "languageCode": "en"}}


def test_the_request_has_the_documented_shape(fake_server: FakeServer,
                                              client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES))
    discovery(fake_server, client).find_sights("Berlin", 5)
    request = fake_server.requests[0]
    assert request.json() == {"textQuery": "top sights in Berlin", "pageSize": 20,
                              "includedType": "tourist_attraction"}
    assert request.headers["x-goog-api-key"] == "test-key"
    assert request.headers["x-goog-fieldmask"] == FIELD_MASK
    assert "key" not in request.query


def test_a_bare_base_url_is_completed(fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES))
    sights = PlacesDiscovery(client, "test-key", url=fake_server.url).find_sights("Berlin", 1)
    assert [s.name for s in sights] == ["Brandenburg Gate"]


def test_pages_are_followed_with_the_next_page_token(fake_server: FakeServer,
                                                     client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES, page_size_limit=2))
    sights = discovery(fake_server, client).find_sights("Berlin", 4)
    assert len(sights) == 4
    assert [r.json().get("pageToken") for r in fake_server.requests] == [None, "2"]


def test_no_places_means_no_sights(fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler([]))
    assert discovery(fake_server, client).find_sights("Nowhere", 5) == []


def test_a_rejected_key_is_reported_without_the_key(fake_server: FakeServer,
                                                    client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, places_handler(PLACES, api_key="right"))
    with pytest.raises(ExternalServiceError, match="HTTP 403: API key not valid") as caught:
        discovery(fake_server, client, key="wrong-secret").find_sights("Berlin", 3)
    assert "wrong-secret" not in str(caught.value)


def test_rate_limiting_is_retried(fake_server: FakeServer, client: httpx.Client) -> None:
    handler = places_handler(PLACES)
    replies = [google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")]
    replies[0].headers["Retry-After"] = "0"
    fake_server.route("POST", SEARCH_PATH,
                      lambda r: replies.pop() if replies else handler(r))
    assert len(discovery(fake_server, client).find_sights("Berlin", 2)) == 2
    assert len(fake_server.requests) == 2


def test_malformed_json_is_an_external_service_error(fake_server: FakeServer,
                                                     client: httpx.Client) -> None:
    fake_server.route("POST", SEARCH_PATH, Reply(200, b"{not json",
                                                 {"Content-Type": "application/json"}))
    with pytest.raises(ExternalServiceError, match="malformed JSON"):
        discovery(fake_server, client).find_sights("Berlin", 2)


def test_a_missing_key_is_a_configuration_error(client: httpx.Client) -> None:
    with pytest.raises(ConfigurationError, match="MAPS_KEY"):
        PlacesDiscovery(client, "")
