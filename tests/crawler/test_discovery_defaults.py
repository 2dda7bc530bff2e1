"""The default discovery chain (Places with a key, else Wikidata, then OpenStreetMap) and the
crawl stage on the defaults, against the fake services."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fakes.commons import CommonsFile, FakeCommons
from fakes.images import jpeg_bytes
from fakes.overpass import INTERPRETER_PATH, element, overpass_handler
from fakes.server import FakeServer, Reply
from fakes.wikidata import SPARQL_PATH, WikidataItem, wikidata_handler
from sightscan.api import create_app
from sightscan.config import load_settings
from sightscan.crawler.errors import NoSightsFoundError
from sightscan.crawler.factory import DiscoveryChain
from sightscan.crawler.osm import OverpassDiscovery
from sightscan.crawler.store import run_crawl_stage
from sightscan.crawler.wikidata import WikidataDiscovery
from sightscan.errors import ExternalServiceError
from sightscan.pipeline import Stage, StageRun
from sightscan.tasks import HueyScheduler, Queues, run_job
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import request_city
from sightscan.warehouse.marts import city_overview
from sightscan.warehouse.models import Sight

FAST: dict[str, Any] = {"retries": 1, "backoff": 0.001, "max_backoff": 0.01}
PARIS = [WikidataItem("Q243", "Eiffel Tower", 180, ["Point(2.2945 48.8583)"],
                      description="tower in Paris", article="Eiffel Tower")]


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a connection to it is refused (network down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def chain(server_url: str, client: httpx.Client, display: str | None = None) -> DiscoveryChain:
    return DiscoveryChain([
        ("wikidata", WikidataDiscovery(client, url=server_url + SPARQL_PATH, **FAST)),
        ("osm", OverpassDiscovery(client, url=server_url + INTERPRETER_PATH, **FAST)),
    ], display_name=display)


def test_a_failing_provider_hands_over_to_the_next(fake_server: FakeServer,
                                                   client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, Reply(503))
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler(
        [element("way", 1, "Louvre", wikidata="Q19675")]))
    assert [s.name for s in chain(fake_server.url, client).find_sights("Paris", 5)] == ["Louvre"]


def test_a_provider_that_finds_nothing_hands_over_to_the_next(fake_server: FakeServer,
                                                              client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({}))
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler(
        [element("node", 2, "Dom", wikidata="Q4176")]))
    assert [s.name for s in chain(fake_server.url, client).find_sights("Köln", 5)] == ["Dom"]


def test_network_providers_search_for_the_display_name(fake_server: FakeServer,
                                                       client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    found = chain(fake_server.url, client, display="Paris").find_sights("PARIS", 5)
    assert [s.name for s in found] == ["Eiffel Tower"]


def test_nothing_found_anywhere_is_no_sights_found(fake_server: FakeServer,
                                                   client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({}))
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler([]))
    with pytest.raises(NoSightsFoundError, match="no sights found for Nowhere by wikidata, osm"):
        chain(fake_server.url, client).find_sights("Nowhere", 5)


def test_network_down_fails_with_each_providers_reason(client: httpx.Client) -> None:
    with pytest.raises(ExternalServiceError) as error:
        chain(closed_port_url(), client).find_sights("Paris", 5)
    message = str(error.value)
    assert message.startswith("sight discovery failed for Paris (wikidata: ")
    assert "connection failed" in message and "osm: " in message


# ---------------------------------------------------------------- the crawl stage
def stage_warehouse(tmp_path: Path, base_url: str) -> Warehouse:
    settings = load_settings(
        sightscan_data_dir=tmp_path / "data",
        sightscan_wikidata_url=base_url + SPARQL_PATH,
        sightscan_overpass_url=base_url + INTERPRETER_PATH,
        sightscan_commons_url=base_url + "/w/api.php",
    )
    warehouse = Warehouse.from_settings(settings, migrate=True)
    with warehouse.transaction() as session:
        request_city(session, city="PARIS", threshold=1)
    return warehouse


def test_a_requested_city_is_crawled_with_the_defaults(fake_server: FakeServer,
                                                       tmp_path: Path) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    photo = Reply(200, jpeg_bytes(), {"Content-Type": "image/jpeg"})
    FakeCommons(fake_server, [CommonsFile("File:E.jpg", "Eiffel Tower", photo)])
    warehouse = stage_warehouse(tmp_path, fake_server.url)
    result = run_crawl_stage(warehouse, StageRun("PARIS"))
    counts = result.counts
    assert (counts["sights"], counts["stored"]) == (1, 1)
    assert result.follow_up is not None and result.follow_up.stage is Stage.LABEL
    with warehouse.transaction() as session:
        assert [(c.city, c.images) for c in city_overview(session)] == [("PARIS", 1)]
        sight = session.scalars(select(Sight)).one()  # what the sight is, kept with it
        assert (sight.name, sight.description, sight.url) == (
            "Eiffel Tower", "tower in Paris", "https://en.wikipedia.org/wiki/Eiffel_Tower")
    assert fake_server.requests_to(INTERPRETER_PATH) == []  # Wikidata answered: no OSM call
    warehouse.dispose()


def test_the_crawl_stage_fails_with_a_readable_reason_when_providers_fail(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.route("GET", SPARQL_PATH, Reply(400, "Bad query", {"Content-Type": "text/plain"}))
    fake_server.route("POST", INTERPRETER_PATH, Reply(400, "<html>parse error</html>"))
    warehouse = stage_warehouse(tmp_path, fake_server.url)
    with pytest.raises(ExternalServiceError) as error:
        run_crawl_stage(warehouse, StageRun("PARIS"))
    assert str(error.value).startswith("sight discovery failed for PARIS (wikidata: ")
    assert "HTTP 400" in str(error.value)
    warehouse.dispose()


def test_a_failed_crawl_job_tells_the_user_why_in_the_job_list_and_city_status(
    fake_server: FakeServer, tmp_path: Path
) -> None:
    fake_server.route("GET", SPARQL_PATH, Reply(400, "Bad query", {"Content-Type": "text/plain"}))
    fake_server.route("POST", INTERPRETER_PATH, Reply(400, "<html>parse error</html>"))
    warehouse = stage_warehouse(tmp_path, fake_server.url)
    queues = Queues.create(warehouse.settings, warehouse)
    job_id = HueyScheduler(queues).submit(Stage.CRAWL, "PARIS")
    assert job_id is not None
    run_job(queues, Stage.CRAWL, job_id, final_attempt=True)
    app = create_app(warehouse.settings, warehouse=warehouse, scheduler=HueyScheduler(queues))
    with TestClient(app) as client:
        [listed] = client.get("/api/jobs").json()["jobs"]
        status = client.get("/api/cities/Paris/status").json()
    assert listed["state"] == "failed"
    assert listed["reason"].startswith("ExternalServiceError: sight discovery failed for PARIS")
    assert (status["stage"], status["state"]) == ("failed", "failed")
    assert status["error"].startswith("sight discovery failed for PARIS (wikidata: ")
    warehouse.dispose()
