"""Wikidata discovery against a fake Wikidata Query Service, and SPARQL string escaping."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fakes.server import FakeServer, Reply
from fakes.wikidata import (
    RESULTS_TYPE,
    SPARQL_PATH,
    WikidataItem,
    decode_sparql_string,
    malformed_query,
    string_literals,
    wikidata_handler,
)
from sightscan.crawler.factory import CrawlerConfig, make_discovery
from sightscan.crawler.types import Sight
from sightscan.crawler.wikidata import (
    WikidataDiscovery,
    build_query,
    parse_point,
    rank_bindings,
    sparql_string,
)
from sightscan.errors import ExternalServiceError

PARIS = [
    WikidataItem("Q2981", "Notre-Dame de Paris", 120, ["Point(2.35 48.853)"]),
    WikidataItem("Q19675", "Louvre", 180, ["Point(2.3375 48.861)"]),  # ties sort by name
    WikidataItem("Q243", "Eiffel Tower", 180,  # two coordinate statements: two rows
                 ["Point(2.2945 48.8583)", "Point(2.2944 48.8582)"],
                 description="tower on the Champ de Mars in Paris, France",
                 article="Eiffel Tower"),
    WikidataItem("Q90", "Louvre", 5, ["Point(0 0)"]),  # another item of the same name
    WikidataItem("Q12345678", None, 500),  # no English label: the service answers the QID
    WikidataItem("Q189", "Arc de Triomphe", 90, []),  # no coordinates: no coord binding
    WikidataItem("Q7", "Moon Crater", 10, ["<http://www.wikidata.org/entity/Q405> Point(1 2)"]),
]
HOSTILE = ['Pa"ris', "Pa\\ris", '"} ; DROP ALL ; SELECT * { ?s ?p ?o } #', "x\"@en . } #",
           "line\nbreak", "cr\rlf", "tab\there", "quote's", "back\\slash\\", "\\u0022",
           "\\\\u005C\"", "Zürich", "北京市", "São Paulo 🗼", "nul\x00bell\x07", "\\"]


def discovery(server: FakeServer, client: httpx.Client) -> WikidataDiscovery:
    return WikidataDiscovery(client, url=f"{server.url}{SPARQL_PATH}", backoff=0.001,
                             max_backoff=0.01)


def test_sparql_strings_use_the_grammar_escapes() -> None:
    assert sparql_string('a"b\\c') == '"a\\"b\\\\c"'
    assert sparql_string("a\nb\rc\td'e") == '"a\\nb\\rc\\td\\\'e"'
    assert sparql_string("\x00") == '"\\u0000"'
    assert sparql_string("München") == '"München"'
    # a backslash before `u` must not form a UCHAR, even for pre-parse \u decoders
    assert sparql_string("\\u0022") == '"\\\\\\u00750022"'


@pytest.mark.parametrize("city", HOSTILE)
def test_a_hostile_city_name_stays_inside_its_string_literal(city: str) -> None:
    benign_literals, benign_skeleton = string_literals(build_query("Paris", 10))
    literals, skeleton = string_literals(build_query(city, 10))
    assert skeleton == benign_skeleton
    assert len(literals) == len(benign_literals) == 3
    assert literals == [city, "en", "en"]
    literal = sparql_string(city)
    assert "\n" not in literal and "\r" not in literal
    # a processor that decodes \uXXXX before parsing still finds one intact literal
    pre_decoded = literal.replace("\\u0075", "u").replace("\\u0055", "U")
    assert string_literals(pre_decoded)[1] == '""'


@pytest.mark.parametrize("city", HOSTILE)
def test_a_hostile_city_name_is_matched_exactly_by_the_server(
        city: str, fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({
        city: [WikidataItem("Q1", "Sight", 3)], "Paris": PARIS}))
    assert [s.name for s in discovery(fake_server, client).find_sights(city, 5)] == ["Sight"]


def test_sights_are_ranked_by_sitelinks_without_duplicates(
        fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    sights = discovery(fake_server, client).find_sights("Paris", 10)
    assert sights == [
        Sight("Eiffel Tower", 48.8583, 2.2945, "wikidata", "Q243",
              "tower on the Champ de Mars in Paris, France",
              "https://en.wikipedia.org/wiki/Eiffel_Tower"),
        # without an English article the link is the item's Wikidata page
        Sight("Louvre", 48.861, 2.3375, "wikidata", "Q19675",
              url="https://www.wikidata.org/wiki/Q19675"),
        Sight("Notre-Dame de Paris", 48.853, 2.35, "wikidata", "Q2981",
              url="https://www.wikidata.org/wiki/Q2981"),
        Sight("Arc de Triomphe", None, None, "wikidata", "Q189",
              url="https://www.wikidata.org/wiki/Q189"),
        Sight("Moon Crater", None, None, "wikidata", "Q7",  # not on Earth: no coordinates
              url="https://www.wikidata.org/wiki/Q7"),
    ]
    assert len(fake_server.requests) == 1


def test_the_request_has_the_documented_shape(fake_server: FakeServer,
                                              client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    discovery(fake_server, client).find_sights("  Paris ", 3)
    request = fake_server.requests[0]
    assert request.method == "GET" and request.param("format") == "json"
    assert request.headers["accept"] == "application/sparql-results+json"
    assert request.headers["user-agent"].startswith("SightScan/")
    query = request.param("query") or ""
    assert string_literals(query)[0] == ["Paris", "en", "en"]
    for part in ("wd:Q486972", "wd:Q570116", "wdt:P131", "wikibase:sitelinks", "wdt:P625",
                 "ORDER BY DESC(?sitelinks)", "SERVICE wikibase:label",
                 "schema:description ?itemDescription", "schema:about ?item",
                 "schema:isPartOf <https://en.wikipedia.org/>"):
        assert part in query
    assert query.rstrip().endswith("LIMIT 26")


def test_the_limit_is_honoured(fake_server: FakeServer, client: httpx.Client) -> None:
    many = [WikidataItem(f"Q{100 + i}", f"Sight {i:02d}", i) for i in range(60)]
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Rome": many}))
    sights = discovery(fake_server, client).find_sights("Rome", 3)
    assert [s.name for s in sights] == ["Sight 59", "Sight 58", "Sight 57"]
    assert (fake_server.requests[0].param("query") or "").rstrip().endswith("LIMIT 26")
    assert discovery(fake_server, client).find_sights("Rome", 0) == []
    assert len(fake_server.requests) == 1  # a zero limit asks nothing


def test_a_city_without_results_has_no_sights(fake_server: FakeServer,
                                              client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    assert discovery(fake_server, client).find_sights("Atlantis", 5) == []
    assert discovery(fake_server, client).find_sights("   ", 5) == []
    assert len(fake_server.requests) == 1


def test_rate_limits_are_retried_after_the_pause_asked(fake_server: FakeServer,
                                                       client: httpx.Client) -> None:
    handler = wikidata_handler({"Paris": PARIS})
    failures = [Reply(429, "Too Many Requests - Please retry in 0 seconds.",
                      {"Retry-After": "0", "Content-Type": "text/plain"})]
    fake_server.route("GET", SPARQL_PATH, lambda r: failures.pop(0) if failures else handler(r))
    assert len(discovery(fake_server, client).find_sights("Paris", 2)) == 2
    assert len(fake_server.requests) == 2


def test_server_errors_are_retried(fake_server: FakeServer, client: httpx.Client) -> None:
    handler = wikidata_handler({"Paris": PARIS})
    failures = [Reply(500, "java.util.concurrent.TimeoutException",
                      {"Content-Type": "text/plain"})]
    fake_server.route("GET", SPARQL_PATH, lambda r: failures.pop(0) if failures else handler(r))
    assert len(discovery(fake_server, client).find_sights("Paris", 2)) == 2
    assert len(fake_server.requests) == 2


def test_persistent_server_errors_are_an_external_service_error(
        fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, Reply(503, "busy", {"Content-Type": "text/plain"}))
    with pytest.raises(ExternalServiceError, match="Wikidata Query Service failed after 4"):
        discovery(fake_server, client).find_sights("Paris", 2)


def test_a_malformed_query_answer_is_an_external_service_error(
        fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, malformed_query("Encountered unexpected token"))
    with pytest.raises(ExternalServiceError, match="Wikidata Query Service failed: HTTP 400"):
        discovery(fake_server, client).find_sights("Paris", 2)
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("body", [
    # a query timeout mid-stream: truncated JSON followed by a Java exception
    '{"head":{"vars":["item"]},"results":{"bindings":[{"item":{"type":"uri","value":"http'
    "\njava.util.concurrent.TimeoutException",
    "<html>Service unavailable</html>",
])
def test_malformed_json_is_an_external_service_error(
        body: str, fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, Reply(200, body, {"Content-Type": RESULTS_TYPE}))
    with pytest.raises(ExternalServiceError, match="Wikidata Query Service returned malformed"):
        discovery(fake_server, client).find_sights("Paris", 2)


@pytest.mark.parametrize("body", [{"head": {"vars": []}}, {"results": {"bindings": {}}}, []])
def test_json_without_bindings_is_an_external_service_error(
        body: dict[str, Any] | list[Any], fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, Reply(200, body))
    with pytest.raises(ExternalServiceError, match="no results.bindings"):
        discovery(fake_server, client).find_sights("Paris", 2)


def test_odd_rows_are_skipped() -> None:
    rows = [
        {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q1"},
         "itemLabel": {"type": "literal", "value": "  Spaced   Out "},
         "sitelinks": {"type": "literal", "value": "not a number"},
         "coord": {"type": "literal", "value": "Point(200 100)"}},
        {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/P31"},
         "itemLabel": {"type": "literal", "value": "a property"}},
        {"item": {"type": "bnode", "value": "b0"}, "itemLabel": {"value": "blank"}},
        {"itemLabel": {"value": "no item"}},
        {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q2"},
         "itemLabel": {"type": "literal", "value": ""}},
        {"item": {"type": "uri", "value": "http://www.wikidata.org/entity/Q3"},
         "itemLabel": {"type": "literal", "value": "spaced out"}, "sitelinks": {"value": "0"}},
    ]
    assert rank_bindings(rows) == [Sight("Spaced Out", None, None, "wikidata", "Q1",
                                              url="https://www.wikidata.org/wiki/Q1")]


def test_points_are_read_as_lon_lat() -> None:
    assert parse_point("Point(2.2945 48.8583)") == (48.8583, 2.2945)
    assert parse_point("Point(-73.9857 40.7484)") == (40.7484, -73.9857)
    assert parse_point("<http://www.wikidata.org/entity/Q2> Point(1.5 -2.5)") == (-2.5, 1.5)
    assert parse_point("<http://www.wikidata.org/entity/Q111> Point(1 2)") == (None, None)
    assert parse_point("Point(nan 1)") == (None, None)
    assert parse_point(None) == (None, None)


def test_the_fake_decodes_like_the_grammar() -> None:
    assert decode_sparql_string('a\\"b\\\\c\\u00e9\\U0001F5FC\\n') == 'a"b\\cé🗼\n'
    with pytest.raises(ValueError):
        decode_sparql_string("\\x")


def test_the_factory_builds_it_from_the_settings(fake_server: FakeServer,
                                                 client: httpx.Client) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    config = CrawlerConfig(wikidata_url=f"{fake_server.url}{SPARQL_PATH}")
    made = make_discovery("wikidata", client=client, config=config)
    assert isinstance(made, WikidataDiscovery)
    assert made.find_sights("Paris", 1)[0].source_id in {"Q243", "Q19675"}


def test_a_description_and_article_from_any_row_of_the_item_are_kept() -> None:
    entity = "http://www.wikidata.org/entity/Q64"
    rows: list[dict[str, Any]] = [
        {"item": {"value": entity}, "itemLabel": {"value": "Gate"}},
        {"item": {"value": entity}, "itemLabel": {"value": "Gate"},
         "itemDescription": {"value": "  18th-century\n  monument "},
         "article": {"value": "https://en.wikipedia.org/wiki/Brandenburg_Gate"}},
        {"item": {"value": entity}, "itemLabel": {"value": "Gate"},
         "itemDescription": {"value": "later text"},
         "article": {"value": "javascript:alert(1)"}},
    ]
    sight = rank_bindings(rows)[0]
    assert sight.description == "18th-century monument"
    assert sight.url == "https://en.wikipedia.org/wiki/Brandenburg_Gate"
    hostile = [{"item": {"value": entity}, "itemLabel": {"value": "Gate"},
                "article": {"value": "javascript:alert(1)"}}]
    assert rank_bindings(hostile)[0].url == "https://www.wikidata.org/wiki/Q64"
