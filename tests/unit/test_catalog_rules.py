"""The attribute rows against Talon.One's catalog, and the traits seen that no
row forwards: pure rules, on unsaved rows."""

import pytest

from destinations.models import AttributeMapping, TalonAttribute
from destinations.selectors.catalog import (
    catalog_suggestions,
    check_rows,
    guess_type,
    seen_suggestions,
)
from destinations.services.mapping import engage_trait, flattened_traits


def rows(*pairs: tuple[str, str]) -> list[AttributeMapping]:
    return [AttributeMapping(name=name, type=type_) for name, type_ in pairs]


def catalog(**types: str) -> list[TalonAttribute]:
    return [TalonAttribute(name=name, type=type_, title=name) for name, type_ in types.items()]


def identify(traits: object, **fields: object) -> dict:
    return {"type": "identify", "userId": "u1", "traits": traits, **fields}


def engage(key: str, value: object, computation_class: str = "audience") -> dict:
    return identify(
        {key: value, "email": "ada@example.com"},
        context={"personas": {"computation_key": key, "computation_class": computation_class}},
    )


def test_rows_are_flagged_missing_typed_differently_or_only_in_another_case() -> None:
    checks = check_rows(
        rows(("email", "string"), ("age", "string"), ("Plan", "string"), ("gone", "number")),
        catalog(email="string", age="number", plan="string"),
    )

    assert [(c.row.name, c.problem, c.talon_type) for c in checks] == [
        ("email", "", "string"),
        ("age", "⚠ Talon.One says number", "number"),
        ("Plan", "⚠ not in Talon.One: it has plan (names are case-sensitive)", None),
        ("gone", "⚠ not in Talon.One", None),
    ]


def test_list_and_time_types_compare_exactly() -> None:
    checks = check_rows(
        rows(("tags", "(list string)"), ("seen", "string")),
        catalog(tags="(list string)", seen="time"),
    )

    assert [c.problem for c in checks] == ["", "⚠ Talon.One says time"]


def test_catalog_attributes_no_row_forwards_are_offered_with_their_type() -> None:
    offered = catalog_suggestions(
        rows(("Email", "string")),
        catalog(email="string", vip="boolean", home="(list location)"),
    )

    assert [(s.name, s.type, s.why_not) for s in offered] == [
        ("vip", "boolean", ""),
        ("home", None, "rows cannot be (list location)"),
    ]


def test_traits_seen_are_flattened_counted_with_the_newest_value() -> None:
    events = [
        identify({"email": "new@example.com", "address": {"city": "Paris"}, "age": 41}),
        identify({"address": {"city": "Berlin", "zip": "10115"}, "vip": True}),
        identify({"address": {"city": "Rome"}}),
    ]

    seen, unknown = seen_suggestions(
        events, rows(("email", "string")), catalog(age="number"), forward_engage=True
    )

    assert [(s.name, s.count, s.example, s.type, s.in_talon_one) for s in seen] == [
        ("address_city", 3, "Paris", "string", False),
        ("address_zip", 1, "10115", "string", False),
        ("age", 1, 41, "number", True),
        ("vip", 1, True, "boolean", False),
    ]
    assert unknown == []


def test_a_trait_talon_one_types_is_offered_with_talon_ones_type() -> None:
    [seen], _ = seen_suggestions(
        [identify({"age": "41"})], [], catalog(age="number"), forward_engage=True
    )

    assert (seen.type, seen.talon_type) == ("number", "number")


def test_traits_no_row_can_forward_say_why() -> None:
    seen, _ = seen_suggestions(
        [identify({"EMAIL": "x", "first name": "Ada", "home": "52.5,13.4", "mixed": [1, "a"]})],
        rows(("email", "string")),
        catalog(home="(list location)"),
        forward_engage=True,
    )

    why = {s.name: s.why_not for s in seen}
    assert why["EMAIL"] == "the row email differs only in case (names are case-sensitive)"
    assert why["first name"].startswith("Talon.One attribute names may hold only")
    assert why["home"] == "rows cannot be (list location)"
    assert why["mixed"] == "its values fit no row type"


def test_engage_traits_pass_through_so_only_unknown_ones_are_listed() -> None:
    events = [
        engage("vip_customers", True),
        engage("vip_customers", False),
        engage("ltv", 120.5, "trait"),
        engage("known_audience", True),
    ]

    seen, unknown = seen_suggestions(
        events, [], catalog(known_audience="boolean"), forward_engage=True
    )

    assert [s.name for s in seen] == ["email"]
    assert [(s.name, s.count, s.computation_class, s.type, s.example) for s in unknown] == [
        ("vip_customers", 2, "audience", "boolean", True),
        ("ltv", 1, "trait", "number", 120.5),
    ]


def test_with_pass_through_off_an_engage_trait_is_a_trait_seen_too() -> None:
    seen, unknown = seen_suggestions([engage("vip_customers", True)], [], [], forward_engage=False)

    assert [s.name for s in seen] == ["email", "vip_customers"]
    assert [s.name for s in unknown] == ["vip_customers"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean"),
        (3, "number"),
        (2.5, "number"),
        ("Berlin", "string"),
        ("2024-05-01T10:00:00Z", "time"),
        ("2024-05-01", "string"),
        (["a", "b"], "(list string)"),
        ([1, 2.5], "(list number)"),
        (["2024-05-01T10:00:00Z"], "(list time)"),
        ([True], None),
        ([1, "a"], None),
        ([[1]], None),
        ([], None),
        (None, None),
        ({"a": 1}, None),
    ],
)
def test_guessed_types(value: object, expected: str | None) -> None:
    assert guess_type(value) == expected


def test_flattened_traits_are_named_as_the_mapping_names_them() -> None:
    event = identify({"address": {"city": "Berlin"}, "address_city": "Paris", "empty": {}})

    assert flattened_traits(event) == {"address_city": "Paris"}
    assert flattened_traits(identify("not an object")) == {}
    assert flattened_traits({"type": "identify"}) == {}


def test_engage_trait() -> None:
    trait = engage_trait(engage("ltv", [1, 2], "trait"))

    assert trait is not None
    assert (trait.key, trait.computation_class, trait.type) == ("ltv", "trait", "(list number)")
    assert engage_trait(engage("vip", None)).type is None
    assert engage_trait(identify({"vip": True})) is None
    missing = identify({}, context={"personas": {"computation_key": "vip"}})
    assert engage_trait(missing) is None


def test_an_engage_call_whose_traits_are_not_an_object_has_no_engage_trait() -> None:
    # A batch stores such an identify as skipped, and the catalog reads it back.
    personas = {"computation_key": "vip", "computation_class": "audience"}
    event = identify(["vip"], context={"personas": personas})

    assert engage_trait(event) is None
    assert flattened_traits(event) == {}
