"""City name normalisation: the seed's rule, applied once, safe for any input."""

from __future__ import annotations

import pytest

from sightscan.cities import MAX_CITY_LENGTH, normalise_city
from sightscan.errors import InvalidInputError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Berlin", "BERLIN"),
        ("münchen", "MÜNCHEN"),
        ("Köln", "KÖLN"),
        ("Düsseldorf", "DÜSSELDORF"),
        ("Frankfurt am Main", "FRANKFURT AM MAIN"),
        ("  New   York\t City \n", "NEW YORK CITY"),
        ("St. Petersburg", "ST PETERSBURG"),
        ("Baden-Baden", "BADEN-BADEN"),
        ("san_sebastian", "SAN_SEBASTIAN"),
        ("L'Aquila", "LAQUILA"),
        ("Halle (Saale)", "HALLE SAALE"),
        ("District 9", "DISTRICT 9"),
        ("Москва", "МОСКВА"),
        ("東京", "東京"),
        ("Zu\u0308rich", "ZÜRICH"),  # decomposed umlaut is composed first
    ],
)
def test_normalisation_rules(raw: str, expected: str) -> None:
    assert normalise_city(raw) == expected


def test_normalisation_is_idempotent() -> None:
    once = normalise_city("  Sankt   Goar am Rhein!! ")
    assert normalise_city(once) == once


def test_different_spellings_meet_in_one_name() -> None:
    assert normalise_city("köln") == normalise_city("KÖLN ") == normalise_city("Köln!")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Robert'); DROP TABLE dim_city;--", "ROBERT DROP TABLE DIM_CITY--"),
        ("x\" OR \"1\"=\"1", "X OR 11"),
        ("../../Bonn", "BONN"),
        ("Bonn\x00", "BONN"),
    ],
)
def test_sql_and_path_characters_are_dropped(raw: str, expected: str) -> None:
    assert normalise_city(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "!!!", "'; --", "../", "- _", "🙂", "\x00", "x" * 300, "y" * (MAX_CITY_LENGTH + 1)],
)
def test_unusable_names_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidInputError):
        normalise_city(raw)


def test_longest_allowed_name_is_kept() -> None:
    assert normalise_city("a" * MAX_CITY_LENGTH) == "A" * MAX_CITY_LENGTH


@pytest.mark.parametrize("raw", [None, 42, b"Bonn"])
def test_non_text_is_rejected(raw: object) -> None:
    with pytest.raises(InvalidInputError):
        normalise_city(raw)  # type: ignore[arg-type]


def test_rejection_message_is_one_line_and_bounded() -> None:
    with pytest.raises(InvalidInputError) as error:
        normalise_city("!" * 250)
    assert "\n" not in str(error.value) and len(str(error.value)) < 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＢＥＲＬＩＮ", "BERLIN"),  # fullwidth: NFKC
        ("BERLІN", "BERLIN"),  # Cyrillic І among Latin letters
        ("ΒΕRLIN", "BERLIN"),  # Greek Beta and Epsilon
        ("Раris", "PARIS"),  # Cyrillic Р, lower case
        ("Москва", "МОСКВА"),  # wholly Cyrillic: a name in its own script stays
        ("Αθήνα", "ΑΘΉΝΑ"),  # wholly Greek
    ],
)
def test_compatibility_forms_and_lookalike_letters_meet_the_latin_name(
    raw: str, expected: str
) -> None:
    assert normalise_city(raw) == expected


def test_latin_mixed_with_a_cyrillic_letter_without_a_latin_twin_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="one script"):
        normalise_city("BERLИN")
