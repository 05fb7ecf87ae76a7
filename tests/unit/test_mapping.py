"""Unit tests of the mapping rules, one rule at a time (docs/mapping.md is the contract)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from destinations.services.mapping import (
    ASSUMED_UTC,
    ATTRIBUTE_NAME_RE,
    AUDIENCE_AS_MEMBERSHIP,
    AUDIENCE_NOT_BOOLEAN,
    COLLISION,
    EMPTY_OBJECT,
    ENGAGE_NO_VALUE,
    ENGAGE_OFF,
    ENGAGE_UNKNOWN_CLASS,
    ENGAGE_UNTYPED,
    INVALID_NAME,
    MAX_DEPTH,
    MAX_STRING_LENGTH,
    NOT_LISTED,
    NOT_LISTED_CASE,
    NULL_SKIPPED,
    TOO_DEEP,
    TRAITS_NOT_OBJECT,
    AttributeRule,
    AttributeType,
    MappingConfig,
    MappingResult,
    Note,
    attribute_name_error,
    map_identify,
)

T = AttributeType
AUDIENCE = {"computation_class": "audience", "computation_key": "vip_users"}


def identify(traits: Any = ..., personas: dict[str, Any] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "identify", "userId": "u1"}
    if traits is not ...:
        event["traits"] = traits
    if personas is not None:
        event["context"] = {"personas": personas}
    return event


def run(
    traits: Any,
    rules: dict[str, AttributeType] | None = None,
    *,
    personas: dict[str, Any] | None = None,
    forward_engage: bool = True,
) -> MappingResult:
    config = MappingConfig(
        rules=tuple(AttributeRule(name, type_) for name, type_ in (rules or {}).items()),
        forward_engage=forward_engage,
    )
    return map_identify(identify(traits, personas), config)


def reasons(result: MappingResult) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for note in result.notes:
        found.setdefault(note.attribute, []).append(note.reason)
    return found


def coerce(value: Any, type_: AttributeType) -> MappingResult:
    return run({"x": value}, {"x": type_})


def sent(value: Any, type_: AttributeType) -> Any:
    result = coerce(value, type_)
    assert "x" in result.attributes, result.notes
    return result.attributes["x"]


def refusal(value: Any, type_: AttributeType) -> str:
    result = coerce(value, type_)
    assert result.attributes == {}
    [note] = result.notes
    return note.reason


# Names


def test_attribute_types_are_talon_ones() -> None:
    assert [t.value for t in AttributeType] == [
        "string",
        "number",
        "boolean",
        "time",
        "location",
        "(list string)",
        "(list number)",
        "(list time)",
    ]


@pytest.mark.parametrize("name", ["a", "Z", "email", "firstName", "created_at", "a1_", "A_B_9"])
def test_valid_names(name: str) -> None:
    assert ATTRIBUTE_NAME_RE.match(name)
    assert attribute_name_error(name) is None


@pytest.mark.parametrize(
    ("name", "message_part"),
    [
        ("", "cannot be empty"),
        ("1st", "start with an ASCII letter (A-Z or a-z), not '1'"),
        ("_id", "not '_'"),
        ("Émile", "not 'É'"),
        ("first name", "not ' '"),
        ("address.city", "not '.'"),
        ("e-mail", "not '-'"),
        ("straße", "not 'ß'"),
        ("a b-c d", "not ' ', '-'"),
        ("email\n", r"not '\n'"),
        ("x٣", "not '٣'"),
    ],
)
def test_invalid_names_say_why(name: str, message_part: str) -> None:
    message = attribute_name_error(name)
    assert message is not None
    assert message_part in message
    assert not ATTRIBUTE_NAME_RE.match(name)


def test_name_pattern_does_not_accept_a_trailing_newline() -> None:
    # Python's $ would; Talon.One's (Go's) does not.
    assert not ATTRIBUTE_NAME_RE.match("email\n")


# Traits and allowlist


def test_missing_or_null_traits_are_empty_without_note() -> None:
    assert run(...) == MappingResult({}, ())
    assert run(None) == MappingResult({}, ())


@pytest.mark.parametrize("traits", ["text", 3, ["a"], True])
def test_traits_that_are_not_an_object_are_noted(traits: Any) -> None:
    assert run(traits, {"email": T.STRING}) == MappingResult(
        {}, (Note("traits", TRAITS_NOT_OBJECT),)
    )


def test_only_listed_traits_are_sent() -> None:
    result = run({"email": "a@example.com", "plan": "pro"}, {"email": T.STRING})
    assert result.attributes == {"email": "a@example.com"}
    assert result.notes == (Note("plan", NOT_LISTED),)


def test_listed_but_absent_traits_are_not_mentioned() -> None:
    assert run({"email": "a@example.com"}, {"email": T.STRING, "plan": T.STRING}).notes == ()


def test_names_are_case_sensitive_and_the_near_miss_is_named() -> None:
    result = run({"firstname": "Ada"}, {"firstName": T.STRING})
    assert result.attributes == {}
    assert result.notes == (Note("firstname", NOT_LISTED_CASE.format(row="firstName")),)


def test_camel_and_snake_case_are_never_renamed() -> None:
    result = run(
        {"firstName": "Ada", "first_name": "Ada L.", "createdAt": "2024-01-01"},
        {"firstName": T.STRING, "first_name": T.STRING, "createdAt": T.TIME},
    )
    assert result.attributes == {
        "firstName": "Ada",
        "first_name": "Ada L.",
        "createdAt": "2024-01-01T00:00:00Z",
    }


def test_a_listed_name_talon_cannot_have_is_never_sent() -> None:
    # The admin refuses such rows; the mapping still never emits the name.
    result = run({"first name": "Ada"}, {"first name": T.STRING})
    assert result.attributes == {}
    error = attribute_name_error("first name")
    assert result.notes == (Note("first name", INVALID_NAME.format(error=error)),)


# Flattening


def test_nested_objects_are_flattened_with_underscores() -> None:
    result = run(
        {"address": {"city": "Berlin", "geo": {"lat": 52.5}}},
        {"address_city": T.STRING, "address_geo_lat": T.NUMBER},
    )
    assert result.attributes == {"address_city": "Berlin", "address_geo_lat": 52.5}


def nest(depth: int, leaf: Any = "deep") -> dict[str, Any]:
    """An object whose leaf sits `depth` levels down: nest(1) == {"k": leaf}."""
    value: Any = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def test_values_at_the_depth_bound_are_kept() -> None:
    name = "_".join(["k"] * MAX_DEPTH)
    assert run(nest(MAX_DEPTH), {name: T.STRING}).attributes == {name: "deep"}


def test_values_below_the_depth_bound_are_dropped_with_one_note() -> None:
    name = "_".join(["k"] * (MAX_DEPTH + 1))
    result = run(nest(MAX_DEPTH + 5), {name: T.STRING})
    assert result.attributes == {}
    assert result.notes == (Note("_".join(["k"] * MAX_DEPTH), TOO_DEEP),)


def test_empty_objects_send_nothing() -> None:
    result = run({"company": {}, "address": {"geo": {}}}, {"company": T.STRING})
    assert result == MappingResult(
        {}, (Note("company", EMPTY_OBJECT), Note("address_geo", EMPTY_OBJECT))
    )


@pytest.mark.parametrize(
    "traits",
    [
        {"address_city": "flat", "address": {"city": "nested"}},
        {"address": {"city": "nested"}, "address_city": "flat"},
    ],
)
def test_collision_the_flat_key_wins_in_any_order(traits: dict[str, Any]) -> None:
    result = run(traits, {"address_city": T.STRING})
    assert result.attributes == {"address_city": "flat"}
    reason = COLLISION.format(loser="address.city", winner="address_city")
    assert result.notes == (Note("address_city", reason),)


def test_collision_between_equally_deep_paths_is_alphabetical() -> None:
    result = run({"a": {"b_c": 1}, "a_b": {"c": 2}}, {"a_b_c": T.NUMBER})
    assert result.attributes == {"a_b_c": 1}
    assert reasons(result) == {"a_b_c": [COLLISION.format(loser="a_b.c", winner="a.b_c")]}


def test_collision_winner_null_keeps_the_stored_value() -> None:
    result = run({"a_b": None, "a": {"b": "x"}}, {"a_b": T.STRING})
    assert result.attributes == {}
    assert reasons(result)["a_b"][-1] == NULL_SKIPPED


def test_null_is_skipped_with_a_note() -> None:
    result = run({"phone": None, "email": "a@example.com"}, {"phone": T.STRING, "email": T.STRING})
    assert result.attributes == {"email": "a@example.com"}
    assert result.notes == (Note("phone", NULL_SKIPPED),)


def test_unlisted_null_is_just_unlisted() -> None:
    assert run({"phone": None}).notes == (Note("phone", NOT_LISTED),)


def test_one_bad_value_does_not_block_the_others() -> None:
    result = run(
        {"age": "old", "email": "a@example.com", "vip": "TRUE"},
        {"age": T.NUMBER, "email": T.STRING, "vip": T.BOOLEAN},
    )
    assert result.attributes == {"email": "a@example.com", "vip": True}
    assert [note.attribute for note in result.notes] == ["age"]


# Coercion: string and location


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("as sent ", "as sent "),
        ("", ""),
        ("ünïcödé ✓", "ünïcödé ✓"),
        (10115, "10115"),
        (-3, "-3"),
        (10**30, str(10**30)),
        (4.5, "4.5"),
        (4.0, "4.0"),
        (1e21, "1e+21"),
        (True, "true"),
        (False, "false"),
        ("x" * MAX_STRING_LENGTH, "x" * MAX_STRING_LENGTH),
    ],
)
def test_string(value: Any, expected: str) -> None:
    assert sent(value, T.STRING) == expected


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (["a"], "a list is not accepted"),
        (float("nan"), "the number is not finite"),
        (float("inf"), "the number is not finite"),
        ("x" * (MAX_STRING_LENGTH + 1), f"longer than {MAX_STRING_LENGTH} characters"),
        ("nul\x00byte", "NUL character or a lone surrogate"),
        ("lone \ud800", "NUL character or a lone surrogate"),
    ],
)
def test_string_refused(value: Any, detail: str) -> None:
    reason = refusal(value, T.STRING)
    assert reason.startswith("cannot be sent as string: ")
    assert detail in reason


def test_location_is_a_string_only() -> None:
    assert sent("Berlin, DE", T.LOCATION) == "Berlin, DE"
    assert (
        refusal(52.5, T.LOCATION) == "cannot be sent as location: a number is not accepted; dropped"
    )


# Coercion: number


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        (-0.5, -0.5),
        (1e300, 1e300),
        (9007199254740991, 9007199254740991),
        (-9007199254740991, -9007199254740991),
        ("42", 42),
        (" 42 ", 42),
        ("-4.2", -4.2),
        ("0", 0),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("2.5E-3", 0.0025),
        ("9007199254740991", 9007199254740991),
    ],
)
def test_number(value: Any, expected: float) -> None:
    result = sent(value, T.NUMBER)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (True, "a boolean is not accepted"),
        (None, None),
        ("", "the string is not a decimal number"),
        ("007", "the string is not a decimal number"),
        ("+5", "the string is not a decimal number"),
        (".5", "the string is not a decimal number"),
        ("5.", "the string is not a decimal number"),
        ("0x10", "the string is not a decimal number"),
        ("1_000", "the string is not a decimal number"),
        ("1,5", "the string is not a decimal number"),
        ("NaN", "the string is not a decimal number"),
        ("Infinity", "the string is not a decimal number"),
        ("٤٢", "the string is not a decimal number"),
        ("1e999", "the number is not finite"),
        (float("nan"), "the number is not finite"),
        (float("-inf"), "the number is not finite"),
        (9007199254740992, "beyond ±9007199254740991"),
        (-(10**400), "beyond ±9007199254740991"),
        ("9007199254740992", "beyond ±9007199254740991"),
        ("1" * 5000, "beyond ±9007199254740991"),
        ([1], "a list is not accepted"),
    ],
)
def test_number_refused(value: Any, detail: str | None) -> None:
    reason = refusal(value, T.NUMBER)
    if detail is None:
        assert reason == NULL_SKIPPED
    else:
        assert reason.startswith("cannot be sent as number: ")
        assert detail in reason


# Coercion: boolean


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), (" False ", False), ("TRUE", True)],
)
def test_boolean(value: Any, expected: bool) -> None:
    assert sent(value, T.BOOLEAN) is expected


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (1, "a number is not accepted"),
        (0, "a number is not accepted"),
        ("1", 'the string is not "true" or "false"'),
        ("yes", 'the string is not "true" or "false"'),
        ("", 'the string is not "true" or "false"'),
        ([True], "a list is not accepted"),
    ],
)
def test_boolean_refused(value: Any, detail: str) -> None:
    assert refusal(value, T.BOOLEAN) == f"cannot be sent as boolean: {detail}; dropped"


# Coercion: time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1990-05-17", "1990-05-17T00:00:00Z"),
        ("2024-03-01T10:30:00Z", "2024-03-01T10:30:00Z"),
        ("2024-03-01t10:30:00z", "2024-03-01T10:30:00Z"),
        ("2024-03-01T10:30:00.000Z", "2024-03-01T10:30:00Z"),
        ("2024-03-01T10:30:00.5Z", "2024-03-01T10:30:00.5Z"),
        ("2024-03-01T10:30:00,25Z", "2024-03-01T10:30:00.25Z"),
        ("2024-03-01T10:30:00.123456789Z", "2024-03-01T10:30:00.123456Z"),
        ("2024-03-01T10:30:00+01:00", "2024-03-01T09:30:00Z"),
        ("2024-03-01T10:30:00+0100", "2024-03-01T09:30:00Z"),
        ("2024-03-01T10:30:00-05", "2024-03-01T15:30:00Z"),
        ("2024-03-01T23:30:00-01:00", "2024-03-02T00:30:00Z"),
        ("2024-03-01T10:30Z", "2024-03-01T10:30:00Z"),
        (" 2024-03-01T10:30:00Z ", "2024-03-01T10:30:00Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        (0, "1970-01-01T00:00:00Z"),
        (1709289000, "2024-03-01T10:30:00Z"),
        (1709289000.25, "2024-03-01T10:30:00.25Z"),
        (1709289000123, "2024-03-01T10:30:00.123Z"),
        (-86400, "1969-12-31T00:00:00Z"),
        # The threshold: below 10**11 seconds, from it milliseconds.
        (99_999_999_999, "5138-11-16T09:46:39Z"),
        (100_000_000_000, "1973-03-03T09:46:40Z"),
    ],
)
def test_time(value: Any, expected: str) -> None:
    result = coerce(value, T.TIME)
    assert result.attributes == {"x": expected}
    assert result.notes == ()


def test_naive_time_is_assumed_utc_with_a_note() -> None:
    result = coerce("2024-03-01 10:30:00", T.TIME)
    assert result.attributes == {"x": "2024-03-01T10:30:00Z"}
    assert result.notes == (Note("x", ASSUMED_UTC),)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("next Tuesday", "not an ISO 8601 date or date-time"),
        ("2024-02-30", "not an ISO 8601 date or date-time"),
        ("2024-13-01", "not an ISO 8601 date or date-time"),
        ("2024-03-01T24:00:00Z", "not an ISO 8601 date or date-time"),
        ("2024-03-01T23:59:60Z", "not an ISO 8601 date or date-time"),
        ("2024-03-01T10:30:00+24:00", "not an ISO 8601 date or date-time"),
        ("20240301", "not an ISO 8601 date or date-time"),
        ("1709289000", "not an ISO 8601 date or date-time"),
        ("2024-W09", "not an ISO 8601 date or date-time"),
        ("01/03/2024", "not an ISO 8601 date or date-time"),
        ("0000-01-01", "not an ISO 8601 date or date-time"),
        ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999"),
        (10**15, "outside the years 1 to 9999"),
        (-(10**15), "outside the years 1 to 9999"),
        (1e300, "outside the years 1 to 9999"),
        (float("nan"), "the number is not finite"),
        (True, "a boolean is not accepted"),
        (10**20, "beyond ±9007199254740991"),
    ],
)
def test_time_refused(value: Any, detail: str) -> None:
    reason = refusal(value, T.TIME)
    assert reason.startswith("cannot be sent as time: ")
    assert detail in reason


# Coercion: lists


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        (["a", "b"], T.LIST_STRING, ["a", "b"]),
        ("a", T.LIST_STRING, ["a"]),
        (7, T.LIST_STRING, ["7"]),
        ([], T.LIST_NUMBER, []),
        ([1, "2.5", " 3 "], T.LIST_NUMBER, [1, 2.5, 3]),
        ("4", T.LIST_NUMBER, [4]),
        (["1990-05-17", 0], T.LIST_TIME, ["1990-05-17T00:00:00Z", "1970-01-01T00:00:00Z"]),
        (1709289000, T.LIST_TIME, ["2024-03-01T10:30:00Z"]),
    ],
)
def test_list(value: Any, type_: AttributeType, expected: list[Any]) -> None:
    assert sent(value, type_) == expected


@pytest.mark.parametrize(
    ("value", "type_", "detail"),
    [
        (["a", None], T.LIST_STRING, "item 1: null is not accepted"),
        (["a", ["b"]], T.LIST_STRING, "item 1: a list is not accepted"),
        ([{"id": 1}], T.LIST_STRING, "a list holding objects is not accepted"),
        (["a", {"id": 1}], T.LIST_NUMBER, "a list holding objects is not accepted"),
        ([1, True], T.LIST_NUMBER, "item 1: a boolean is not accepted"),
        ("x", T.LIST_NUMBER, "the string is not a decimal number"),
        (["2024-01-01", "soon"], T.LIST_TIME, "item 1: the string is not an ISO 8601"),
    ],
)
def test_list_refused_whole(value: Any, type_: AttributeType, detail: str) -> None:
    reason = refusal(value, type_)
    assert reason.startswith(f"cannot be sent as {type_}: {detail}")


def test_naive_times_in_a_list_give_one_note() -> None:
    result = coerce(["2024-01-01 10:00", "2024-01-02 10:00"], T.LIST_TIME)
    assert result.attributes == {"x": ["2024-01-01T10:00:00Z", "2024-01-02T10:00:00Z"]}
    assert result.notes == (Note("x", ASSUMED_UTC),)


def test_a_naive_time_sent_alone_as_a_list_gets_the_note_too() -> None:
    result = coerce("2024-01-01 10:00", T.LIST_TIME)
    assert result.attributes == {"x": ["2024-01-01T10:00:00Z"]}
    assert result.notes == (Note("x", ASSUMED_UTC),)


@pytest.mark.parametrize("type_", list(AttributeType))
def test_objects_never_reach_a_row_they_are_flattened(type_: AttributeType) -> None:
    result = run({"x": {"y": 1}}, {"x": type_})
    assert result.attributes == {}
    assert result.notes == (Note("x_y", NOT_LISTED),)


# Engage


def test_audience_entry_passes_through_unlisted() -> None:
    result = run({"vip_users": True}, personas=AUDIENCE)
    assert result == MappingResult({"vip_users": True}, ())


def test_audience_exit_sends_false() -> None:
    assert run({"vip_users": False}, personas=AUDIENCE).attributes == {"vip_users": False}


def test_audience_value_is_checked_as_boolean() -> None:
    assert run({"vip_users": "true"}, personas=AUDIENCE).attributes == {"vip_users": True}
    result = run({"vip_users": 1}, personas=AUDIENCE)
    assert result.attributes == {}
    assert reasons(result) == {
        "vip_users": ["cannot be sent as boolean: a number is not accepted; dropped"]
    }


def test_only_the_computation_key_passes_through() -> None:
    result = run(
        {"vip_users": True, "email": "a@example.com", "plan": "pro"},
        {"email": T.STRING},
        personas=AUDIENCE,
    )
    assert result.attributes == {"vip_users": True, "email": "a@example.com"}
    assert result.notes == (Note("plan", NOT_LISTED),)


@pytest.mark.parametrize("value", [12.5, 3, "gold", ["a", "b"], [1, 2.5], [], True, "2024-01-01"])
def test_computed_trait_passes_through_with_its_own_type(value: Any) -> None:
    personas = {"computation_class": "trait", "computation_key": "score"}
    assert run({"score": value}, personas=personas).attributes == {"score": value}


@pytest.mark.parametrize("value", [["a", 1], [True], [None], [{"a": 1}], [["a"]]])
def test_computed_list_without_a_type_is_dropped(value: Any) -> None:
    personas = {"computation_class": "trait", "computation_key": "score"}
    result = run({"score": value}, personas=personas)
    assert result == MappingResult({}, (Note("score", ENGAGE_UNTYPED),))


def test_computed_trait_values_are_still_checked() -> None:
    personas = {"computation_class": "trait", "computation_key": "score"}
    assert reasons(run({"score": 2**60}, personas=personas))["score"][0].startswith(
        "cannot be sent as number: the integer is beyond"
    )
    assert reasons(run({"score": None}, personas=personas)) == {"score": [NULL_SKIPPED]}


def test_computed_object_is_flattened_under_its_key() -> None:
    personas = {"computation_class": "trait", "computation_key": "last_order"}
    result = run({"last_order": {"total": 9.5, "shop": {"city": "Berlin"}}}, personas=personas)
    assert result.attributes == {"last_order_total": 9.5, "last_order_shop_city": "Berlin"}


def test_a_row_types_the_engage_value() -> None:
    personas = {"computation_class": "trait", "computation_key": "ltv"}
    assert run({"ltv": "12.50"}, {"ltv": T.NUMBER}, personas=personas).attributes == {"ltv": 12.5}
    assert run({"ltv": 12}, {"ltv": T.STRING}, personas=personas).attributes == {"ltv": "12"}


def test_a_row_differing_in_case_does_not_type_the_engage_value() -> None:
    personas = {"computation_class": "trait", "computation_key": "ltv"}
    assert run({"ltv": "12.50"}, {"LTV": T.NUMBER}, personas=personas).attributes == {
        "ltv": "12.50"
    }


def test_engage_key_talon_cannot_have_is_dropped() -> None:
    personas = {"computation_class": "audience", "computation_key": "vip-users"}
    result = run({"vip-users": True}, personas=personas)
    error = attribute_name_error("vip-users")
    assert result == MappingResult({}, (Note("vip-users", INVALID_NAME.format(error=error)),))


def test_forward_engage_off_treats_engage_traits_as_ordinary() -> None:
    unlisted = run({"vip_users": True}, personas=AUDIENCE, forward_engage=False)
    assert unlisted == MappingResult({}, (Note("vip_users", ENGAGE_OFF),))
    listed = run(
        {"vip_users": False}, {"vip_users": T.BOOLEAN}, personas=AUDIENCE, forward_engage=False
    )
    assert listed == MappingResult({"vip_users": False}, ())


@pytest.mark.parametrize("name", ["A-b", "Z-b", "a-b", "z-b"])
def test_a_name_starting_with_any_ascii_letter_is_refused_only_for_its_other_characters(
    name: str,
) -> None:
    assert attribute_name_error(name) == (
        "Talon.One attribute names may hold only ASCII letters, digits and underscores, not '-'."
    )


def test_an_empty_attribute_name_is_refused_saying_so() -> None:
    assert attribute_name_error("") == "Talon.One attribute names cannot be empty."


def test_with_audiences_as_memberships_only_computed_traits_pass_through() -> None:
    config = MappingConfig(rules=(), audiences_as_attributes=False)
    trait = {"computation_class": "trait", "computation_key": "score"}

    assert map_identify(identify({"score": 7}, trait), config) == MappingResult({"score": 7}, ())
    assert map_identify(identify({"vip_users": True}, AUDIENCE), config) == MappingResult(
        {}, (Note("vip_users", AUDIENCE_AS_MEMBERSHIP),)
    )
    assert map_identify(identify({"vip_users": "yes"}, AUDIENCE), config) == MappingResult(
        {}, (Note("vip_users", AUDIENCE_NOT_BOOLEAN),)
    )


def test_journey_step_is_a_membership() -> None:
    personas = {"computation_class": "journey_step", "computation_key": "j_step"}
    assert run({"j_step": True}, personas=personas).attributes == {"j_step": True}
    assert run({"j_step": "soon"}, personas=personas).attributes == {}


def test_unknown_computation_class_gets_no_pass_through() -> None:
    personas = {"computation_class": "prediction", "computation_key": "churn"}
    result = run({"churn": 0.3}, personas=personas)
    assert result == MappingResult(
        {},
        (
            Note("churn", ENGAGE_UNKNOWN_CLASS.format(computation_class="prediction")),
            Note("churn", NOT_LISTED),
        ),
    )


def test_engage_call_without_its_trait_is_noted() -> None:
    assert run({}, personas=AUDIENCE) == MappingResult({}, (Note("vip_users", ENGAGE_NO_VALUE),))


@pytest.mark.parametrize(
    "context",
    [None, "x", {"personas": None}, {"personas": []}, {"personas": {"computation_key": 3}}],
)
def test_malformed_context_means_no_engage(context: Any) -> None:
    event = {**identify({"vip_users": True}), "context": context}
    result = map_identify(event, MappingConfig(rules=()))
    assert result == MappingResult({}, (Note("vip_users", NOT_LISTED),))


def test_result_is_the_json_body() -> None:
    result = run(
        {"a": "1", "b": "2024-01-01", "c": ["x"], "d": "true"},
        {"a": T.NUMBER, "b": T.TIME, "c": T.LIST_STRING, "d": T.BOOLEAN},
    )
    assert json.loads(json.dumps(result.attributes, allow_nan=False)) == result.attributes
