"""OpenStreetMap (Overpass) discovery against a fake interpreter, and QL escaping."""

from __future__ import annotations

import re

import httpx
import pytest

from fakes.overpass import INTERPRETER_PATH, element, overpass_handler
from fakes.server import FakeServer, Reply
from sightscan.crawler.osm import OverpassDiscovery, build_query, ql_string, rank_elements
from sightscan.errors import ExternalServiceError

LINKED = [
    element("way", 2, "Brandenburg Gate", tourism="attraction", wikidata="Q82425",
            **{"name:de": "Brandenburger Tor", "name:fr": "Porte de Brandebourg"}),
    element("node", 3, "Victory Column", historic="monument", wikipedia="de:Siegessäule"),
    element("node", 4, "Brandenburg Gate", tourism="viewpoint", wikidata="Q82425"),
]
UNLINKED = [element("node", 5, "Small Memorial", historic="memorial",
                    website="https://memorial.example/", description="A small  memorial."),
            element("node", 6, "", historic="memorial")]
HOSTILE = ['Ber"lin', "Ber\\lin", 'x"];out;node(1);("', "a\\\"]->.city;", "München (.*)+?$",
           "line\nbreak", "tab\there"]


def string_literals(query: str) -> tuple[list[str], str]:
    """Decode every double-quoted QL literal; return them and the query with them blanked."""
    literals: list[str] = []

    def take(match: re.Match[str]) -> str:
        raw = match.group(1)
        literals.append(re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(
            m.group(1), m.group(1)), raw))
        return '""'

    skeleton = re.sub(r'"((?:[^"\\]|\\.)*)"', take, query)
    return literals, skeleton


def discovery(server: FakeServer, client: httpx.Client) -> OverpassDiscovery:
    return OverpassDiscovery(client, url=f"{server.url}{INTERPRETER_PATH}", backoff=0.001,
                             max_backoff=0.01)


def test_ql_strings_escape_quotes_and_backslashes() -> None:
    assert ql_string('a"b\\c') == '"a\\"b\\\\c"'


@pytest.mark.parametrize("city", HOSTILE)
def test_a_hostile_city_name_stays_inside_its_string_literal(city: str) -> None:
    _, benign_skeleton = string_literals(build_query("Berlin", linked_only=True))
    literals, skeleton = string_literals(build_query(city, linked_only=True))
    assert skeleton == benign_skeleton
    assert "\n" not in skeleton
    patterns = [literals[1], literals[5]]  # the name and name:en regexes of the area
    assert literals[0] == "name" and literals[4] == "name:en"
    for pattern in patterns:
        assert re.fullmatch(pattern[1:-1], city) is not None
        assert re.fullmatch(pattern[1:-1], city + "x") is None


def test_sights_linked_to_wikidata_come_first_without_duplicates(
        fake_server: FakeServer, client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler(LINKED, UNLINKED))
    sights = discovery(fake_server, client).find_sights("BERLIN", 2)
    assert [s.name for s in sights] == ["Brandenburg Gate", "Victory Column"]
    assert sights[0].source_id == "way/2"
    assert (sights[0].lat, sights[0].lon) == (52.5, 13.4)
    assert len(fake_server.requests) == 1


def test_each_sight_links_its_article_item_or_website(fake_server: FakeServer,
                                                      client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler(LINKED, UNLINKED))
    gate, column, memorial = discovery(fake_server, client).find_sights("Berlin", 3)
    assert gate.url == "https://www.wikidata.org/wiki/Q82425" and gate.description is None
    assert column.url == "https://de.wikipedia.org/wiki/Siegess%C3%A4ule"
    assert memorial.url == "https://memorial.example/"
    assert memorial.description == "A small memorial."


def test_odd_link_tags_give_no_link() -> None:
    odd = [element("node", 7, "A", tourism="museum", wikipedia="Just a title",
                   website="javascript:alert(1)"),
           element("node", 8, "B", tourism="museum", wikidata="not-a-qid", website="/relative"),
           element("node", 9, "C", tourism="museum", wikipedia="https://en.wikipedia.org/wiki/C")]
    assert [s.url for s in rank_elements(odd)] == [None, None, "https://en.wikipedia.org/wiki/C"]


def test_unlinked_sights_fill_up_when_too_few_are_linked(fake_server: FakeServer,
                                                         client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler(LINKED, UNLINKED))
    sights = discovery(fake_server, client).find_sights("Berlin", 10)
    assert [s.name for s in sights] == ["Brandenburg Gate", "Victory Column", "Small Memorial"]
    assert len(fake_server.requests) == 2


def test_the_query_is_posted_as_a_data_form_field(fake_server: FakeServer,
                                                  client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH, overpass_handler(LINKED))
    discovery(fake_server, client).find_sights("Berlin", 1)
    query = fake_server.requests[0].form()["data"][0]
    assert query.startswith("[out:json][timeout:25];")
    assert '["boundary"="administrative"]' in query
    assert "tourism" in query and "historic" in query and "out tags center;" in query


def test_gateway_timeouts_are_retried(fake_server: FakeServer, client: httpx.Client) -> None:
    handler = overpass_handler(LINKED)
    failures = [Reply(504, "<html>Gateway Timeout</html>"),
                Reply(429, "<html>rate_limited</html>", {"Retry-After": "0"})]
    fake_server.route("POST", INTERPRETER_PATH,
                      lambda r: failures.pop(0) if failures else handler(r))
    assert len(discovery(fake_server, client).find_sights("Berlin", 2)) == 2
    assert len(fake_server.requests) == 3


def test_a_query_error_page_is_an_external_service_error(fake_server: FakeServer,
                                                         client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH,
                      Reply(400, "<html><body>Error: line 1: parse error</body></html>"))
    with pytest.raises(ExternalServiceError, match="Overpass failed: HTTP 400"):
        discovery(fake_server, client).find_sights("Berlin", 2)


def test_an_html_page_with_status_200_is_malformed_json(fake_server: FakeServer,
                                                        client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH, Reply(200, "<html>busy</html>"))
    with pytest.raises(ExternalServiceError, match="malformed JSON"):
        discovery(fake_server, client).find_sights("Berlin", 2)


def test_a_runtime_error_remark_is_an_external_service_error(fake_server: FakeServer,
                                                             client: httpx.Client) -> None:
    fake_server.route("POST", INTERPRETER_PATH, Reply(200, {
        "elements": [], "remark": "runtime error: Query timed out in \"query\" at line 1"}))
    with pytest.raises(ExternalServiceError, match="Query timed out"):
        discovery(fake_server, client).find_sights("Berlin", 2)
