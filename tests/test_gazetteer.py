"""The offline gazetteer: one key per city whatever the spelling, suggestions, search."""

from __future__ import annotations

import pytest

from sightscan.gazetteer import Gazetteer, get_gazetteer


@pytest.mark.parametrize("spelling", ["München", "Munich", "MUNICH", "muenchen", "Мюнхен"])
def test_every_spelling_of_a_city_has_its_one_key(spelling: str) -> None:
    city = get_gazetteer().lookup(spelling)
    assert city is not None
    assert (city.key, city.name, city.country) == ("MUNICH", "Munich", "DE")
    assert city.population > 1_000_000


def test_an_unknown_name_has_no_city_but_close_suggestions() -> None:
    gazetteer = get_gazetteer()
    assert gazetteer.lookup("Atlantsi") is None
    assert gazetteer.lookup("'; --") is None
    assert "Atlanta" in gazetteer.suggestions("Atlantsi")
    assert gazetteer.suggestions("Berlni")[0] == "Berlin"


def test_a_shared_name_belongs_to_the_most_populous_city() -> None:
    paris = get_gazetteer().lookup("Paris")
    assert paris is not None and paris.country == "FR"


def test_search_finds_prefixes_and_typos_most_populous_first() -> None:
    gazetteer = get_gazetteer()
    found = gazetteer.search("Munch", 10)
    assert "MUNICH" in [c.key for c in found]
    populations = [c.population for c in found]
    assert populations == sorted(populations, reverse=True)
    assert [c.key for c in gazetteer.search("Berlni", 5)][0] == "BERLIN"
    assert len(gazetteer.search("B", 7)) == 7
    assert gazetteer.search("!!!", 5) == []


def test_official_names_win_over_alternate_names_of_bigger_cities() -> None:
    gazetteer = Gazetteer([("Big", "AA", 1000, ["Small"]), ("Small", "BB", 10, [])])
    small = gazetteer.lookup("small")
    assert small is not None and small.country == "BB"


def test_airport_codes_are_not_city_names() -> None:
    gazetteer = Gazetteer([("Berlin", "DE", 3_000_000, ["BER", "Berlino"])])
    assert gazetteer.lookup("BER") is None
    assert gazetteer.lookup("Berlino") is not None


def test_concurrent_first_uses_share_one_gazetteer() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: get_gazetteer(), range(4)))
    assert all(g is loaded[0] for g in loaded)
