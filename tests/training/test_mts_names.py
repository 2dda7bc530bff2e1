from sightscan.training.names import merge_label_names, normalise_name


def test_normalise_name_folds_case_underscores_punctuation_and_spaces() -> None:
    assert normalise_name("  Eiffel_Tower!!  ") == "eiffel tower"
    assert normalise_name("Notre-Dame   de Paris") == "notre dame de paris"


def test_spellings_of_one_sight_merge_to_the_most_frequent_display_name() -> None:
    names = ["Eiffel Tower", "Eiffel Tower", "eiffel_tower", "EIFFEL TOWER.", "Louvre"]
    mapping = merge_label_names(names, city=None)
    assert {mapping[n] for n in names[:4]} == {"Eiffel Tower"}
    assert mapping["Louvre"] == "Louvre"


def test_the_city_name_before_or_after_the_sight_is_ignored() -> None:
    names = ["Eiffel Tower", "Eiffel Tower, Paris", "Paris Eiffel Tower", "Eiffel Tower in Paris"]
    mapping = merge_label_names(names, city="Paris")
    assert set(mapping.values()) == {"Eiffel Tower"}


def test_near_duplicates_merge_but_different_sights_stay_apart() -> None:
    names = ["Brandenburger Tor", "Brandenburger Torr", "Berlin Wall", "Berlin Cathedral"]
    mapping = merge_label_names(names, city="Berlin")
    assert mapping["Brandenburger Torr"] == mapping["Brandenburger Tor"]
    assert mapping["Berlin Wall"] != mapping["Berlin Cathedral"]
    assert len(set(mapping.values())) == 3


def test_blank_names_are_left_out() -> None:
    assert merge_label_names(["", "  ", "Louvre"], city=None) == {"Louvre": "Louvre"}
