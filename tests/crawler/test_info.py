"""A sight's description and link as providers report them, made safe to keep and show."""

from __future__ import annotations

from sightscan.crawler.info import (
    MAX_DESCRIPTION,
    short_description,
    web_url,
    wikidata_url,
    wikipedia_url,
)


def test_descriptions_are_one_bounded_line() -> None:
    assert short_description("  a tall\n\ttower ") == "a tall tower"
    assert short_description("   ") is None and short_description(42) is None
    long = short_description("word " * 400)
    assert long is not None and len(long) <= MAX_DESCRIPTION and long.endswith("word…")


def test_only_absolute_web_links_are_kept() -> None:
    assert web_url(" https://example.org/a?b=1 ") == "https://example.org/a?b=1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "/relative", "https://",
                "http://exa mple.org/", "https://example.org/" + "a" * 2000, None, 3):
        assert web_url(bad) is None


def test_wiki_tags_become_article_and_item_pages() -> None:
    assert wikipedia_url("fr:Tour Eiffel") == "https://fr.wikipedia.org/wiki/Tour_Eiffel"
    assert wikipedia_url("de:Kölner Dom") == "https://de.wikipedia.org/wiki/K%C3%B6lner_Dom"
    assert wikipedia_url("no language") is None and wikipedia_url("x y:Title") is None
    assert wikidata_url("Q243") == "https://www.wikidata.org/wiki/Q243"
    assert wikidata_url("Q") is None and wikidata_url("P31") is None
